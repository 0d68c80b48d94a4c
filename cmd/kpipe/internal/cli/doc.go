// Package cli implements the kpipe command: its cobra command tree, input
// and output formats, and exit codes. cmd/kpipe is a thin main around Main.
//
// The commands are documented in docs/cli.md.
package cli
