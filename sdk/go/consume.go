package kpipe

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kpipe/kpipe/sdk/go/internal/consumeexport"
)

// The consume side (ABI version 2, sdk/ABI.md section 10): a
// ConsumeInterceptor sees every record a consumer fetched before the
// application does, a Deserializer turns a fetched key or value into what
// the application reads. A plugin that registers either must import package
// consume (github.com/kpipe/kpipe/sdk/go/consume), which exports their hooks
// and the marker of version 2.

// ConsumedRecord is a record a consumer fetched, as a consume-side plugin
// sees it: the Record (whose Partition is always set, and whose Timestamp is
// set when the broker gave one) and its offset. Like a Record, its Key,
// Value and header values point into the input buffer and are valid only
// until the hook returns.
type ConsumedRecord struct {
	Record
	// Offset is the record's offset in its partition.
	Offset int64
}

// ConsumeInterceptor sees every consumed record after deserialization and
// before the application. It is the analogue of the Java client's
// ConsumerInterceptor.onConsume.
type ConsumeInterceptor interface {
	// OnConsume inspects r and may change its Key, Value, Headers and
	// Timestamp in place (changes to Topic, Partition and Offset are
	// ignored: they say where the record was read). It returns Unchanged
	// (nothing is copied back), Changed, or Drop, which filters the record
	// out. An error or a panic leaves the record as it was, and the host
	// applies the plugin's failure policy (on_failure) to it.
	OnConsume(r *ConsumedRecord) (Action, error)
}

// Deserializer turns the bytes of a consumed key or value into what the
// application reads. It is never called for a null key or value.
type Deserializer interface {
	// Deserialize returns the new r.Key (TargetKey) or r.Value
	// (TargetValue). A nil result makes the field null; an empty, non-nil
	// result makes it empty. The result may alias r: the host copies it
	// before the next call. An error fails the record (or filters it,
	// with on_failure = "drop").
	Deserialize(target Target, r *ConsumedRecord) ([]byte, error)
}

// Plugin kinds of the consume side, with the bits of kpipe_kinds.
const (
	kindConsumeInterceptor = 1 << 3
	kindDeserializer       = 1 << 4
)

// consumedFixed is the offset before the record in a consumed record's
// encoding.
const consumedFixed = 8

// RegisterConsumeInterceptor makes p the plugin's consume interceptor. It
// must be called from an init function of package main, which must also
// import package consume. It panics if one is already registered or p is
// nil.
func RegisterConsumeInterceptor(p ConsumeInterceptor) {
	register(&crt.interceptor, p, "RegisterConsumeInterceptor")
}

// RegisterDeserializer makes p the plugin's deserializer, for keys and
// values alike (Deserialize is told which). It must be called from an init
// function of package main, which must also import package consume. It
// panics if one is already registered or p is nil.
func RegisterDeserializer(p Deserializer) {
	register(&crt.deserializer, p, "RegisterDeserializer")
}

// crt is the consume side of the instance's state, beside rt.
var crt consumeRuntime

type consumeRuntime struct {
	interceptor  ConsumeInterceptor
	deserializer Deserializer
	rec          ConsumedRecord
}

// kinds returns the kpipe_kinds bits of the registered consume-side plugins.
func (c *consumeRuntime) kinds() int32 {
	var k int32
	if c.interceptor != nil {
		k |= kindConsumeInterceptor
	}
	if c.deserializer != nil {
		k |= kindDeserializer
	}
	return k
}

// plugins returns the registered consume-side plugins, for Init.
func (c *consumeRuntime) plugins() []any {
	var out []any
	if c.interceptor != nil {
		out = append(out, c.interceptor)
	}
	if c.deserializer != nil {
		out = append(out, c.deserializer)
	}
	return out
}

// check fails an instance whose consume-side plugins and exports disagree.
func (c *consumeRuntime) check() error {
	return checkLinked(c.kinds() != 0, consumeexport.Linked, "consume",
		"a consume-side plugin is registered, but the module does not export kpipe_on_consume",
		"no consume interceptor or deserializer is registered")
}

// decodeConsumed decodes a consumed record (ABI 10.1) into crt.rec.
func (rt *runtime) decodeConsumed(n int32) error {
	in, err := rt.input(n)
	if err != nil {
		return err
	}
	if len(in) < consumedFixed {
		return fmt.Errorf("%w: consumed record of %d bytes has no offset", errMalformed, len(in))
	}
	crt.rec.Offset = int64(binary.LittleEndian.Uint64(in))
	return rt.dec.decodeRecord(in[consumedFixed:], &crt.rec.Record)
}

// onConsume implements kpipe_on_consume. A non-empty result slice is the
// encoded new record; otherwise code is the hook's result.
func (rt *runtime) onConsume(n int32) (result []byte, code int64) {
	defer rt.recover("OnConsume", &code)
	if crt.interceptor == nil {
		return nil, rt.fail(errors.New("kpipe_on_consume called, but no consume interceptor is registered"))
	}
	if err := rt.decodeConsumed(n); err != nil {
		return nil, rt.fail(err)
	}
	action, err := crt.interceptor.OnConsume(&crt.rec)
	if err != nil {
		return nil, rt.fail(err)
	}
	return rt.actionResult("OnConsume", action, &crt.rec.Record)
}

// deserialize implements kpipe_deserialize. A non-empty result slice is the
// deserialized form; otherwise code is the hook's result (0 for empty).
func (rt *runtime) deserialize(target, n int32) (result []byte, code int64) {
	defer rt.recover("Deserialize", &code)
	if crt.deserializer == nil {
		return nil, rt.fail(errors.New("kpipe_deserialize called, but no deserializer is registered"))
	}
	if err := checkTarget("deserializer", target); err != nil {
		return nil, rt.fail(err)
	}
	if err := rt.decodeConsumed(n); err != nil {
		return nil, rt.fail(err)
	}
	b, err := crt.deserializer.Deserialize(Target(target), &crt.rec)
	return rt.codecResult("deserialized", Target(target), b, err)
}
