// Package kpipe is the Go SDK for kpipe plugins: interceptors, serializers
// and partitioners compiled to WebAssembly and run by the kpipe host next to a
// Kafka producer.
//
// A plugin is a main package that registers its implementation from an init
// function:
//
//	package main
//
//	import kpipe "github.com/kpipe/kpipe/sdk/go"
//
//	type stamp struct{}
//
//	func (stamp) OnSend(r *kpipe.Record) (kpipe.Action, error) {
//		r.AddHeader("source", []byte("kpipe"))
//		return kpipe.Changed, nil
//	}
//
//	func init() { kpipe.RegisterInterceptor(stamp{}) }
//
//	func main() {}
//
// and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o stamp.wasm .
//
// In that build mode main is never called: register from init. A plugin may
// implement several kinds (RegisterInterceptor, RegisterSerializer,
// RegisterPartitioner), at most one of each.
//
// An interceptor that wants the outcome of its records implements
// AckObserver (OnAck) and imports package ack
// (github.com/kpipe/kpipe/sdk/go/ack), which exports the acknowledgement
// hooks; one without OnAck leaves both out, and the host then does no
// acknowledgement work for it.
//
// # Calls
//
// The host runs a pool of instances of a plugin; each instance runs one call
// at a time, so a plugin needs no locking, but it must not rely on state
// shared between instances or on seeing every record in one instance. A
// plugin that implements Initializer gets one Init call per instance before
// its first hook, which is where it should decode its configuration with
// DecodeConfig: an error there fails the plugin when it is loaded.
//
// Records passed to the hooks point into a buffer the host overwrites on the
// next call; copy what must outlive a call. Returning Unchanged from OnSend
// costs nothing beyond the call itself; Changed encodes the record and hands
// it back to the host.
//
// An interceptor registered with RegisterViewInterceptor gets a RecordView
// instead of a Record: the SDK decodes only the fields it reads, and its
// setters log edits that Changed hands the host instead of the whole record
// (the ABI's KPIPE_FEATURE_EDITS). In Go compiled to WebAssembly, where
// decoding a record costs a good part of a call, that makes a plugin that
// reads or stamps a few fields several times cheaper per record.
//
// Every plugin also gets the ABI's batch hooks (kpipe_on_send_batch,
// kpipe_partition_batch, and kpipe_on_ack_batch with package ack) with
// nothing to write: a
// host that supports them hands a plugin many records per call, and the SDK
// calls OnSend, Partition or OnAck for each of them in order, exactly as if
// each had come in its own call, with the same results, errors and panic
// recovery per record (a record's Key, Value and header values are valid
// until its method returns, as in a single call). A batch saves the cost of
// entering the module for every record and changes nothing in what the
// methods are given or may return. The host has one error message per call
// for the records of the call that failed: if they failed with different
// messages, it says how many failed with which. A host that batches
// acknowledgements may deliver them to OnAck a little later than it would
// one by one.
//
// # Errors
//
// A hook that returns an error, or panics, fails that call only (in a batch,
// that record only): the panic is recovered and its message, like an error's,
// goes to the host's log. What
// happens to the record then depends on the kind: an interceptor's record
// goes on unchanged, a serializer's record fails, a partitioner's record goes
// to the default partitioner. Only a fault the SDK cannot recover (a runtime
// fatal error such as running out of memory, or os.Exit) makes the host
// discard the instance.
//
// # Native builds
//
// The hooks and host functions exist only under GOOS=wasip1. Compiled for
// anything else the package still builds, so plugin logic can be unit-tested
// with go test: Config is then empty, and Log writes messages at LevelInfo
// and above to standard error.
//
// The binary interface between plugins and the host is specified in ABI.md
// next to this SDK (sdk/ABI.md in the kpipe repository).
package kpipe
