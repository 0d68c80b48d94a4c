// Command kpipe produces records to Kafka through a pipeline of WebAssembly
// plugins, validates pipeline configurations, inspects and tests plugins, and
// runs an embedded broker for trying things out.
//
// Run "kpipe --help", or see docs/cli.md.
package main
