package wasmhost_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// FuzzResult fuzzes the host's reading of what hooks return, through the
// real call path: each input builds a module (resultModule) whose hooks
// return results the fuzzer chose, often slices into a data segment the
// fuzzer filled, after optionally setting an error message from it, and
// whose kpipe_init enables the features the fuzzer chose. The module is
// loaded under FuzzLoad's limits and each of its hooks called once, with
// FuzzLoad's checks.
func FuzzResult(f *testing.F) {
	rec := fuzzRecord()
	enc := make([]byte, abi.RecordSize(rec))
	abi.PutRecord(enc, rec)
	// Results of hook i come from spec[5i:5i+5] (see resultModule).
	slice := func(off, n int) []byte {
		return []byte{0, byte(off), byte(off >> 8), byte(n), byte(n >> 8)}
	}
	status := func(code int) []byte { return []byte{1, byte(-code), 0, 0, 0} }
	value := func(v uint32) []byte { return binary.LittleEndian.AppendUint32([]byte{2}, v) }
	withError := func(spec []byte, n int) []byte {
		spec = append([]byte(nil), spec...)
		spec[0] |= 4 | byte(n/8)<<3
		return spec
	}
	specOf := func(results ...[]byte) []byte {
		var b []byte
		for _, r := range results {
			b = append(b, r...)
		}
		return b
	}
	// Each hook returns the record (or its bytes); the batch hooks
	// return arrays that name it.
	batch := binary.LittleEndian.AppendUint64(nil, uint64(resultData+16)<<32|uint64(len(enc)))
	batch = binary.LittleEndian.AppendUint64(batch, uint64(resultData+16)<<32|uint64(len(enc)))
	f.Add(append(batch, enc...), specOf(
		slice(16, len(enc)), status(0), slice(16, len(enc)), value(1),
		slice(0, 16), status(0), slice(0, 8), slice(16, len(enc)), slice(16, 5)), byte(0))
	// The partitioners' arrays: partition 1, then the default.
	parts := binary.LittleEndian.AppendUint32(nil, 1)
	parts = binary.LittleEndian.AppendUint32(parts, uint32(0xfffffffc))
	f.Add(parts, specOf(status(-1), status(-2), status(-3), status(-4),
		status(-2), status(-2), slice(0, 8), status(-1), status(-3)), byte(abi.FeaturePartitionKey|abi.FeatureAckNoRecord))
	// Every hook fails with a message.
	msg := []byte("the guest failed \x00\xff\n")
	f.Add(msg, specOf(withError(status(-2), len(msg)), withError(status(-2), len(msg)), withError(status(-2), len(msg)),
		withError(status(-2), len(msg)), withError(status(-2), len(msg)), withError(status(-2), len(msg)),
		withError(status(-2), len(msg)), withError(status(-2), len(msg)), withError(status(-2), len(msg))), byte(0))
	// An edit list that sets a header.
	edits := binary.LittleEndian.AppendUint32(nil, 0x80000001)
	edits = append(edits, 1)
	edits = binary.LittleEndian.AppendUint32(edits, 5)
	edits = append(edits, "stamp"...)
	edits = binary.LittleEndian.AppendUint32(edits, 2)
	edits = append(edits, "ok"...)
	f.Add(edits, specOf(slice(0, len(edits)), status(0), value(0), value(3), status(0), status(0), status(-2),
		slice(0, len(edits)), slice(0, 0)), byte(abi.FeatureEdits))
	// Slices outside memory, above the output limit, and results that
	// are no slice.
	f.Add([]byte{1}, specOf(slice(0xffff, 0xffff), []byte{3, 0xff, 0xff, 0xff, 0xff}, slice(0, 0xffff),
		value(0x7fffffff), slice(0xfff0, 0x100), []byte{3, 1, 2, 3, 4}, slice(0, 4), []byte{3, 0, 0, 0, 0x80}, value(1<<31)), byte(0xff))

	fh := newFuzzHost(f)
	f.Fuzz(func(t *testing.T, data, spec []byte, features byte) {
		wasm := resultModule(data, spec, uint64(features))
		p, err := fh.host(t).Load(context.Background(), fuzzPlugin, wasm, 0, fuzzOptions()...)
		if err != nil {
			// Only kpipe_init's answer to enable_features may vary; the
			// module itself is valid.
			t.Fatalf("Load: %v", err)
		}
		exerciseHooks(t, p)
		within(t, "Close", func() {
			if err := p.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	})
}

// resultModule's memory: its data segment at resultData, of at most
// maxData bytes, then its input buffer at resultBuffer, of at most
// resultBufferCap bytes, to the end of its resultPages pages of memory.
const (
	resultData      = 1024
	resultBuffer    = 1 << 16
	maxData         = resultBuffer - resultData
	resultBufferCap = 2 << 16
	resultPages     = (resultBuffer + resultBufferCap) >> 16
)

// resultHooks are the hooks of resultModule, in the order of their results
// in its spec, with their parameter counts.
var resultHooks = []struct {
	name   string
	params int
}{
	{abi.ExportOnSend, 1}, {abi.ExportOnAck, 1}, {abi.ExportSerialize, 2}, {abi.ExportPartition, 2},
	{abi.ExportOnSendBatch, 2}, {abi.ExportOnAckBatch, 2}, {abi.ExportPartitionBatch, 2},
	{"kpipe_on_consume", 1}, {"kpipe_deserialize", 2},
}

// resultModule returns a valid plugin module of every kind (ABI v2) with
// data (at most maxData bytes of it) at address resultData, whose
// kpipe_init enables features and whose hooks each return a result
// chosen by 5 bytes of spec (zeros past its end): byte 0 says how (its
// bits 0-1) and, if its bit 2 is set, that the hook first calls set_error
// with the first 8*(byte 0 >> 3) bytes at resultData; bytes 1-4 are
//
//	mode 0: a little-endian u16 offset into the data and a u16 length: the
//	        slice of that many bytes there;
//	mode 1: byte 1 b: the status code -(b mod 6);
//	mode 2: a little-endian u32 v: the result v;
//	mode 3: a little-endian u32 v: the result v << 32 | v (any sign).
func resultModule(data, spec []byte, features uint64) []byte {
	data = data[:min(len(data), maxData)]
	var m wasmModule
	const (
		tVoid     = iota // () -> ()
		tI32             // () -> i32
		tBuffer          // (i32) -> i32
		tI64             // () -> i64
		tHook1           // (i32) -> i64
		tHook2           // (i32, i32) -> i64
		tSetError        // (i32, i32) -> ()
		tEnable          // (i64) -> i64
	)
	m.types(
		[]byte{0x60, 0, 0},
		[]byte{0x60, 0, 1, i32},
		[]byte{0x60, 1, i32, 1, i32},
		[]byte{0x60, 0, 1, i64},
		[]byte{0x60, 1, i32, 1, i64},
		[]byte{0x60, 2, i32, i32, 1, i64},
		[]byte{0x60, 2, i32, i32, 0},
		[]byte{0x60, 1, i64, 1, i64},
	)
	const setError, enableFeatures = 0, 1
	m.importFunc("kpipe", "set_error", tSetError)
	m.importFunc("kpipe", "enable_features", tEnable)
	m.memory(resultPages)
	m.data(resultData, data)
	m.fn("kpipe_abi_v1", tVoid, nil)
	m.fn("kpipe_abi_v2", tVoid, nil)
	m.fn("kpipe_kinds", tI32, i32Const(nil, int64(abi.AllKinds)))
	// if size > resultBufferCap { return 0 }; return resultBuffer
	buffer := []byte{0x20, 0} // local.get 0
	buffer = i32Const(buffer, resultBufferCap)
	buffer = append(buffer, 0x4b, 0x04, i32) // i32.gt_u; if (result i32)
	buffer = i32Const(buffer, 0)
	buffer = append(buffer, 0x05) // else
	buffer = i32Const(buffer, resultBuffer)
	buffer = append(buffer, 0x0b) // end
	m.fn("kpipe_buffer", tBuffer, buffer)
	init := i64Const(nil, int64(features))
	init = append(init, 0x10, enableFeatures, 0x1a) // call enable_features; drop
	m.fn("kpipe_init", tI64, i64Const(init, 0))
	for i, hk := range resultHooks {
		var s [5]byte
		if 5*i < len(spec) {
			copy(s[:], spec[5*i:])
		}
		var body []byte
		if s[0]&4 != 0 {
			body = i32Const(body, resultData)
			body = i32Const(body, int64(min(len(data), 8*int(s[0]>>3))))
			body = append(body, 0x10, setError) // call set_error
		}
		u16 := func(b []byte) uint64 { return uint64(binary.LittleEndian.Uint16(b)) }
		v := uint64(binary.LittleEndian.Uint32(s[1:]))
		var r uint64
		switch s[0] & 3 {
		case 0:
			r = (resultData+u16(s[1:]))<<32 | u16(s[3:])
		case 1:
			r = uint64(-int64(s[1] % 6))
		case 2:
			r = v
		case 3:
			r = v<<32 | v
		}
		typ := tHook1
		if hk.params == 2 {
			typ = tHook2
		}
		m.fn(hk.name, typ, i64Const(body, int64(r)))
	}
	return m.bytes()
}

// Value types of the WebAssembly binary format.
const (
	i32 = 0x7f
	i64 = 0x7e
)

// wasmModule builds a WebAssembly module of functions without locals, one
// memory and data segments, exporting every function it defines.
type wasmModule struct {
	typeSec, importSec, funcSec, exportSec, codeSec, memSec, dataSec []byte
	nTypes, nImports, nFuncs, nData                                  int
}

func (m *wasmModule) types(ts ...[]byte) {
	for _, t := range ts {
		m.typeSec = append(m.typeSec, t...)
		m.nTypes++
	}
}

func (m *wasmModule) importFunc(module, name string, typ int) {
	m.importSec = appendName(m.importSec, module)
	m.importSec = appendName(m.importSec, name)
	m.importSec = append(m.importSec, 0x00, byte(typ))
	m.nImports++
}

func (m *wasmModule) memory(pages int) {
	m.memSec = binary.AppendUvarint([]byte{0x00}, uint64(pages)) // no maximum
	m.exportSec = appendName(m.exportSec, abi.ExportMemory)
	m.exportSec = append(m.exportSec, 0x02, 0)
}

func (m *wasmModule) data(addr int, b []byte) {
	m.dataSec = append(m.dataSec, 0x00)
	m.dataSec = append(i32Const(m.dataSec, int64(addr)), 0x0b)
	m.dataSec = binary.AppendUvarint(m.dataSec, uint64(len(b)))
	m.dataSec = append(m.dataSec, b...)
	m.nData++
}

// fn adds a function of type typ with the given body (its instructions,
// without the final end) exported as name.
func (m *wasmModule) fn(name string, typ int, body []byte) {
	m.funcSec = binary.AppendUvarint(m.funcSec, uint64(typ))
	m.exportSec = appendName(m.exportSec, name)
	m.exportSec = append(m.exportSec, 0x00)
	m.exportSec = binary.AppendUvarint(m.exportSec, uint64(m.nImports+m.nFuncs))
	code := append([]byte{0}, body...) // no locals
	code = append(code, 0x0b)
	m.codeSec = binary.AppendUvarint(m.codeSec, uint64(len(code)))
	m.codeSec = append(m.codeSec, code...)
	m.nFuncs++
}

func (m *wasmModule) bytes() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, count int, body []byte) {
		content := binary.AppendUvarint(nil, uint64(count))
		content = append(content, body...)
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(content)))
		out = append(out, content...)
	}
	section(1, m.nTypes, m.typeSec)
	section(2, m.nImports, m.importSec)
	section(3, m.nFuncs, m.funcSec)
	section(5, 1, m.memSec)
	section(7, m.nFuncs+1, m.exportSec)
	section(10, m.nFuncs, m.codeSec)
	section(11, m.nData, m.dataSec)
	return out
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// i32Const appends i32.const v.
func i32Const(b []byte, v int64) []byte { return appendSleb(append(b, 0x41), v) }

// i64Const appends i64.const v.
func i64Const(b []byte, v int64) []byte { return appendSleb(append(b, 0x42), v) }

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// TestResultModule checks that resultModule builds a module that loads and
// whose hooks return what its spec says.
func TestResultModule(t *testing.T) {
	h := newHost(t)
	data := []byte("0123456789")
	spec := []byte{
		0, 2, 0, 3, 0, // kpipe_on_send: the slice "234": not a record
		1, 2, 0, 0, 0, // kpipe_on_ack: KPIPE_ERROR
		0, 0, 0, 10, 0, // kpipe_serialize: the data
		2, 3, 0, 0, 0, // kpipe_partition: 3
	}
	p := load(t, h, "result", resultModule(data, spec, 0), 0)
	defer p.Close(context.Background())
	ctx := context.Background()
	if p.Kinds() != plugins.Kind(abi.AllKinds) {
		t.Errorf("kinds = %v, want all", p.Kinds())
	}
	_, err := p.OnSend(ctx, fuzzRecord())
	wantFault(t, err, "result", "kpipe_on_send", wasmhost.FaultInvalidOutput)
	wantGuestError(t, p.OnAck(ctx, fuzzRecord(), plugins.Ack{}), "result", "kpipe_on_ack", "")
	if b, err := p.Serialize(ctx, plugins.TargetValue, fuzzRecord()); err != nil || string(b) != string(data) {
		t.Errorf("Serialize = %q, %v; want %q", b, err, data)
	}
	if part, err := p.Partition(ctx, fuzzRecord(), 4); err != nil || part != 3 {
		t.Errorf("Partition = %d, %v; want 3", part, err)
	}
}
