// Package plugins defines the three kinds of kpipe plugin (Interceptor,
// Serializer, Partitioner), the Record they work on, and the native built-in
// implementations that a pipeline can mix with WASM plugins.
//
// WASM-backed implementations live in package wasmhost; package pipeline runs
// them around a franz-go producer.
package plugins
