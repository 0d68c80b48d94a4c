package kpipe

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/kpipe/kpipe/sdk/go/internal/ackexport"
)

// Interceptor sees every record before it is serialized (OnSend). It is the
// analogue of Kafka's ProducerInterceptor; to learn each record's outcome as
// well, it also implements AckObserver.
type Interceptor interface {
	// OnSend inspects r and may change it in place. It returns Unchanged
	// (the cheap case, nothing is copied back), Changed, or Drop. If it
	// returns an error, or panics, the record goes on as it was before this
	// interceptor and the host logs and counts the failure.
	OnSend(r *Record) (Action, error)
}

// AckObserver is implemented by interceptors that learn the outcome of the
// records they passed on. Its hooks are exported by package ack
// (github.com/kpipe/kpipe/sdk/go/ack), which such a plugin imports; a plugin
// without OnAck leaves it out, and the host then keeps no acknowledgement
// work for it at all (see package ack).
type AckObserver interface {
	// OnAck is called once for every record that the plugin's OnSend passed
	// on (in any instance), with the record as it was produced (final
	// topic, partition and timestamp) once it was delivered or failed. A
	// record dropped by a later interceptor counts as failed. An error is
	// logged and counted; it changes nothing. OnAck may run in another
	// instance than the OnSend of the same record.
	OnAck(r *Record, ack Ack) error
}

// Serializer turns the key or the value of a record into the bytes sent to
// Kafka. It is never called for a null key or value: null stays null.
type Serializer interface {
	// Serialize returns the serialized form of r.Key (TargetKey) or r.Value
	// (TargetValue). A nil result makes the field null; an empty, non-nil
	// result makes it empty. The result may alias r or a buffer the
	// serializer reuses: the host copies it before the next call. An error
	// fails the record, and its sender gets the message.
	Serialize(target Target, r *Record) ([]byte, error)
}

// Partitioner chooses the partition of a record that does not name one.
type Partitioner interface {
	// Partition returns a partition in [0, numPartitions), or
	// DefaultPartition to let the pipeline's default partitioner choose.
	// An error, a panic or a partition out of range also fall back to the
	// default partitioner, and the host logs and counts the failure.
	Partition(r *Record, numPartitions int32) (int32, error)
}

// Initializer is implemented by plugins that prepare themselves once per
// instance, typically by decoding their configuration with DecodeConfig.
// Init is called after every package init function ran and before the first
// hook; an error fails the instance, so a plugin with a bad configuration
// fails when the pipeline loads it rather than on the first record.
//
// A value registered for several kinds has its Init called once.
type Initializer interface {
	Init() error
}

// Plugin kinds, with the bits of the ABI's kpipe_kinds.
const (
	kindInterceptor = 1 << 0
	kindSerializer  = 1 << 1
	kindPartitioner = 1 << 2
)

// Hook status codes (ABI section 5).
const (
	statusOK               int64 = 0
	statusDrop             int64 = -1
	statusError            int64 = -2
	statusNull             int64 = -3
	statusDefaultPartition int64 = -4
)

// maxErrorLen is how much of an error message is passed to the host, which
// keeps at most 4 KiB of it anyway.
const maxErrorLen = 4096

// maxInputBuffer bounds kpipe_buffer requests: the ABI caps guest memory at
// 2 GiB, so a larger buffer could never be allocated.
const maxInputBuffer = 1 << 30

// RegisterInterceptor makes p the plugin's interceptor. It must be called from
// an init function of package main: a plugin is built with
// -buildmode=c-shared, and in that mode main is never run. It panics if an
// interceptor is already registered or p is nil. If p implements
// AckObserver, the plugin must import package ack.
func RegisterInterceptor(p Interceptor) {
	rt.registerInterceptor("RegisterInterceptor", p)
	rt.interceptor = p
}

// registerInterceptor checks p, given to the registering function fn, for
// RegisterInterceptor and RegisterViewInterceptor, which then store it: it
// panics if p is nil or an interceptor of either kind is already
// registered, and otherwise finds its OnAck.
func (rt *runtime) registerInterceptor(fn string, p any) {
	if p == nil {
		panic("kpipe: " + fn + "(nil)")
	}
	if rt.interceptor != nil || rt.viewInterceptor != nil {
		panic("kpipe: an interceptor is already registered")
	}
	rt.observer, _ = p.(AckObserver)
}

func init() {
	ackexport.OnAck = rt.onAck
	ackexport.OnAckBatch = rt.onAckBatch
}

// RegisterSerializer makes p the plugin's serializer. It must be called from
// an init function of package main, and panics if a serializer is already
// registered or p is nil.
func RegisterSerializer(p Serializer) {
	register(&rt.serializer, p, "RegisterSerializer")
}

// RegisterPartitioner makes p the plugin's partitioner. It must be called from
// an init function of package main, and panics if a partitioner is already
// registered or p is nil.
func RegisterPartitioner(p Partitioner) {
	register(&rt.partitioner, p, "RegisterPartitioner")
}

// register stores p, given to the registering function fn, in slot, the
// plugin of one kind. It panics if p is nil or one is already registered.
func register[P comparable](slot *P, p P, fn string) {
	var none P
	if p == none {
		panic("kpipe: " + fn + "(nil)")
	}
	if *slot != none {
		panic("kpipe: " + fn + " called twice")
	}
	*slot = p
}

// rt is the state of the plugin instance. A WebAssembly instance runs one call
// at a time, so it needs no locking.
var rt runtime

// runtime holds the registered plugins and the buffers reused between calls.
type runtime struct {
	interceptor Interceptor
	// viewInterceptor is the interceptor if it was registered with
	// RegisterViewInterceptor (then interceptor is nil).
	viewInterceptor ViewInterceptor
	// observer is the interceptor if it implements AckObserver.
	observer    AckObserver
	serializer  Serializer
	partitioner Partitioner
	// ackLinked says whether package ack is linked in (it exports the
	// acknowledgement hooks); init checks it against observer.
	ackLinked bool

	// in is the input buffer handed to the host by kpipe_buffer.
	in []byte
	// out is the encoding buffer for records returned by OnSend.
	out []byte
	// keep holds the last result until the next call, so that it stays
	// reachable while the host copies it.
	keep []byte
	// arena holds the records changed by one kpipe_on_send_batch call, one
	// after the other, until the next call; it is reused from call to call.
	arena []byte
	// results is the array of per-record results of a batch hook, reused
	// from call to call.
	results []byte
	// failures gathers the failed records of a batch call.
	failures batchFailures
	// dec and rec are the decoder and the record reused by every hook.
	dec  decoder
	rec  Record
	view RecordView
	ack  Ack
	// features are the ABI features the host enabled (EnableFeatures).
	features Feature
}

// kinds returns the kpipe_kinds bit set of the registered plugins.
func (rt *runtime) kinds() int32 {
	var k int32
	if rt.interceptor != nil || rt.viewInterceptor != nil {
		k |= kindInterceptor
	}
	if rt.serializer != nil {
		k |= kindSerializer
	}
	if rt.partitioner != nil {
		k |= kindPartitioner
	}
	return k | crt.kinds()
}

// buffer implements kpipe_buffer: it returns an input buffer of at least size
// bytes, reusing the current one when it is large enough, or nil.
func (rt *runtime) buffer(size int32) []byte {
	if size < 0 || size > maxInputBuffer {
		return nil
	}
	if size == 0 {
		size = 1 // the address of an empty buffer could be 0, which means failure
	}
	if cap(rt.in) < int(size) {
		rt.in = nil // let the old buffer go before allocating the new one
		rt.in = make([]byte, size)
	}
	rt.in = rt.in[:cap(rt.in)]
	return rt.in
}

// input returns the first n bytes of the input buffer.
func (rt *runtime) input(n int32) ([]byte, error) {
	if n < 0 || int(n) > len(rt.in) {
		return nil, fmt.Errorf("%w: input length %d does not fit the %d-byte input buffer", errMalformed, n, len(rt.in))
	}
	return rt.in[:n], nil
}

// init implements kpipe_init: it calls Init of every registered plugin that
// has one, once per distinct value.
func (rt *runtime) init() (code int64) {
	defer rt.recover("kpipe_init", &code)
	rt.ackLinked = ackexport.Linked
	if err := checkLinked(rt.observer != nil, rt.ackLinked, "ack",
		"the interceptor has OnAck, but the module does not export kpipe_on_ack",
		"no interceptor with an OnAck method is registered"); err != nil {
		return rt.fail(err)
	}
	if err := crt.check(); err != nil {
		return rt.fail(err)
	}
	if rt.viewInterceptor != nil {
		// Its changes are sent as edits where the host takes them
		// (ABI 8.2), and as whole records otherwise.
		rt.features |= Feature(host.enableFeatures(uint64(FeatureEdits))) & FeatureEdits
	}
	var done []any
	for _, p := range append([]any{rt.interceptor, rt.viewInterceptor, rt.serializer, rt.partitioner}, crt.plugins()...) {
		in, ok := p.(Initializer)
		if !ok || containsSame(done, p) {
			continue
		}
		done = append(done, p)
		if err := in.Init(); err != nil {
			return rt.fail(fmt.Errorf("init: %w", err))
		}
	}
	return statusOK
}

// checkLinked fails an instance whose plugins and exports disagree: one
// that registered (registered) a plugin whose hooks package pkg of the SDK
// exports, but did not import it (linked), says unexported; one that imports
// it for nothing says unused.
func checkLinked(registered, linked bool, pkg, unexported, unused string) error {
	switch path := "github.com/kpipe/kpipe/sdk/go/" + pkg; {
	case registered && !linked:
		return fmt.Errorf(`%s: import _ "%s" in package main`, unexported, path)
	case !registered && linked:
		return fmt.Errorf(`the module imports %s, but %s`, path, unused)
	}
	return nil
}

// containsSame reports whether list holds a value equal to p. Values of
// incomparable types never compare equal.
func containsSame(list []any, p any) (found bool) {
	defer func() {
		if recover() != nil {
			found = false
		}
	}()
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// onSend implements kpipe_on_send. A non-empty result slice is the encoded
// new record; otherwise code is the hook's result.
func (rt *runtime) onSend(n int32) (result []byte, code int64) {
	defer rt.recover("OnSend", &code)
	if rt.viewInterceptor != nil {
		in, err := rt.input(n)
		if err != nil {
			return nil, rt.fail(err)
		}
		out, code, err := rt.sendView(in, rt.out[:0])
		if err != nil {
			return nil, rt.fail(err)
		}
		if len(out) > 0 {
			rt.out = out
			return rt.result(out), statusOK
		}
		return nil, code
	}
	if rt.interceptor == nil {
		return nil, rt.fail(errors.New("kpipe_on_send called, but no interceptor is registered"))
	}
	in, err := rt.input(n)
	if err == nil {
		err = rt.dec.decodeRecord(in, &rt.rec)
	}
	if err != nil {
		return nil, rt.fail(err)
	}
	action, err := rt.interceptor.OnSend(&rt.rec)
	if err != nil {
		return nil, rt.fail(err)
	}
	return rt.actionResult("OnSend", action, &rt.rec)
}

// actionResult is the result of kpipe_on_send or kpipe_on_consume whose
// method (OnSend, OnConsume) returned action, without an error, for r: a non-empty
// result slice is the encoded changed record; otherwise code is the hook's
// result. It is small enough to be inlined, so that the common case, an
// unchanged record, costs no call (BenchmarkOnSendUnchanged).
func (rt *runtime) actionResult(method string, action Action, r *Record) (result []byte, code int64) {
	if action == Unchanged {
		return nil, statusOK
	}
	return rt.otherAction(method, action, r)
}

// otherAction is actionResult for every case but an unchanged record.
func (rt *runtime) otherAction(method string, action Action, r *Record) (result []byte, code int64) {
	switch action {
	case Drop:
		return nil, statusDrop
	case Changed:
		out, err := appendRecord(rt.out[:0], r)
		if err != nil {
			return nil, rt.fail(err)
		}
		rt.out = out
		return rt.result(out), statusOK
	}
	return nil, rt.fail(fmt.Errorf("%s returned unknown %v", method, action))
}

// sendView runs OnSendView on the record encoded in in. It returns statusOK
// or statusDrop, or for a changed record statusOK and dst with the result
// (an edit list or the record) appended. A record that does not decode and
// an error are returned as an error.
func (rt *runtime) sendView(in, dst []byte) (out []byte, code int64, err error) {
	v := &rt.view
	if !v.reset(in, &rt.dec) {
		return dst, 0, rt.dec.describe(in)
	}
	action, err := rt.viewInterceptor.OnSendView(v)
	switch {
	case err != nil:
		return dst, 0, err
	case action == Unchanged:
		return dst, statusOK, nil
	case action == Drop:
		return dst, statusDrop, nil
	case action == Changed:
		out, _, err := v.appendResult(dst, rt.features&FeatureEdits != 0)
		return out, statusOK, err
	}
	return dst, 0, fmt.Errorf("OnSendView returned unknown %v", action)
}

// onAck implements kpipe_on_ack.
func (rt *runtime) onAck(n int32) (code int64) {
	defer rt.recover("OnAck", &code)
	if rt.observer == nil {
		return rt.fail(errors.New("kpipe_on_ack called, but no interceptor with OnAck is registered"))
	}
	in, err := rt.input(n)
	if err == nil {
		err = rt.decodeAckInput(in)
	}
	if err != nil {
		return rt.fail(err)
	}
	if err := rt.observer.OnAck(&rt.rec, rt.ack); err != nil {
		return rt.fail(err)
	}
	return statusOK
}

// serialize implements kpipe_serialize. A non-empty result slice is the
// serialized form; otherwise code is the hook's result (0 for empty).
func (rt *runtime) serialize(target, n int32) (result []byte, code int64) {
	defer rt.recover("Serialize", &code)
	if rt.serializer == nil {
		return nil, rt.fail(errors.New("kpipe_serialize called, but no serializer is registered"))
	}
	if err := checkTarget("serializer", target); err != nil {
		return nil, rt.fail(err)
	}
	in, err := rt.input(n)
	if err == nil {
		err = rt.dec.decodeRecord(in, &rt.rec)
	}
	if err != nil {
		return nil, rt.fail(err)
	}
	b, err := rt.serializer.Serialize(Target(target), &rt.rec)
	return rt.codecResult("serialized", Target(target), b, err)
}

// checkTarget checks the target a codec hook was called for; kind
// (serializer, deserializer) names the plugin in the error.
func checkTarget(kind string, target int32) error {
	if t := Target(target); t != TargetKey && t != TargetValue {
		return fmt.Errorf("%w: unknown %s target %d", errMalformed, kind, target)
	}
	return nil
}

// codecResult is the result of kpipe_serialize or kpipe_deserialize whose
// method returned b and err for target; what (serialized, deserialized)
// names b in the error for one too large. A non-empty result slice is b;
// otherwise code is the hook's result (0 for empty).
func (rt *runtime) codecResult(what string, target Target, b []byte, err error) (result []byte, code int64) {
	switch {
	case err != nil:
		return nil, rt.fail(err)
	case b == nil:
		return nil, statusNull
	case len(b) == 0:
		return nil, statusOK
	case len(b) > maxInputBuffer:
		return nil, rt.fail(fmt.Errorf("%s %v of %d bytes is too large", what, target, len(b)))
	}
	return rt.result(b), statusOK
}

// partition implements kpipe_partition.
func (rt *runtime) partition(numPartitions, n int32) (code int64) {
	defer rt.recover("Partition", &code)
	if rt.partitioner == nil {
		return rt.fail(errors.New("kpipe_partition called, but no partitioner is registered"))
	}
	if numPartitions <= 0 {
		return rt.fail(fmt.Errorf("%w: partition count %d is not positive", errMalformed, numPartitions))
	}
	in, err := rt.input(n)
	if err == nil {
		err = rt.decodePartitionInput(in)
	}
	if err != nil {
		return rt.fail(err)
	}
	p, err := rt.partitioner.Partition(&rt.rec, numPartitions)
	switch {
	case err != nil:
		return rt.fail(err)
	case p == DefaultPartition:
		return statusDefaultPartition
	case p < 0 || p >= numPartitions:
		// Negative values other than the status codes are invalid results,
		// which the host would treat as a fault: report an error instead.
		return rt.fail(fmt.Errorf("partition %d out of range [0, %d)", p, numPartitions))
	}
	return int64(p)
}

// result keeps b reachable until the next call and returns it.
func (rt *runtime) result(b []byte) []byte {
	rt.keep = b
	return b
}

// fail passes err's message to the host and returns KPIPE_ERROR.
func (rt *runtime) fail(err error) int64 {
	return rt.failMessage(err.Error())
}

// failMessage passes msg to the host and returns KPIPE_ERROR.
func (rt *runtime) failMessage(msg string) int64 {
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	host.setError(msg)
	return statusError
}

// recover turns a panic in a hook into KPIPE_ERROR with the panic message, so
// that a bug in a plugin fails one call rather than the instance. It must be
// deferred directly.
func (rt *runtime) recover(hook string, code *int64) {
	p := recover()
	if p == nil {
		return
	}
	rt.keep = nil
	*code = rt.fail(panicError(hook, p))
}

// catch turns a panic in a plugin method into an error, so that a batch hook
// fails the one record whose method panicked and goes on with the others. It
// must be deferred directly.
func (rt *runtime) catch(hook string, err *error) {
	if p := recover(); p != nil {
		*err = panicError(hook, p)
	}
}

// panicError returns the error reported for panic p in hook, and logs the
// stack at debug level.
func panicError(hook string, p any) error {
	if host.logEnabled(LevelDebug) {
		host.log(LevelDebug, fmt.Sprintf("panic in %s: %v\n%s", hook, p, debug.Stack()))
	}
	return fmt.Errorf("panic in %s: %v", hook, p)
}
