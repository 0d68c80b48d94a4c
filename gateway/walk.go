package gateway

import (
	"encoding/binary"
	"fmt"
)

// decodeFactor bounds what decoding a request allocates per byte of its
// structure (everything but the record batches of a produce request): kmsg
// makes an array's elements before it reads them, and a count it is given
// may be as large as the bytes left, so a request of zeros claiming 4M
// topics took 64 bytes of ProduceRequestTopic per byte (a 4MiB request
// allocated 264MiB under an 8MiB memory limit; the default 100MiB largest
// request would have taken 6GiB). walkRequest lets only counts that the
// bytes hold through; then the dearest element per byte is a produce
// partition of 8 bytes with one unknown tag (its request and response
// structs, its result and the tag's map, some 430 bytes), under 64 bytes
// per byte. Twice that leaves room.
const decodeFactor = 128

// decodeCost is what decoding the request of header h whose body (after the
// header) is body may allocate, at most: decodeFactor times its bytes other
// than record batches. It returns an error, naming the field, for a body
// whose counts and lengths its bytes cannot hold, which kmsg is not to
// decode (it would allocate for the counts first, and loop over a tag count
// of up to 2^32 before noticing the bytes are missing).
func decodeCost(h header, body []byte) (int64, error) {
	w := walker{b: body, flexible: h.flexible}
	switch h.key {
	case 0:
		w.produce(h.version)
	case 3:
		w.metadata(h.version)
	case 10:
		w.findCoordinator(h.version)
	case 18:
		if h.version <= 3 && h.flexible {
			w.str("client_software_name")
			w.str("client_software_version")
		}
	case 22:
		w.str("transactional_id")
		w.fixed(4, "transaction_timeout_ms")
		if h.version >= 3 {
			w.fixed(8+2, "producer_id and epoch")
		}
	default:
		return 0, nil // not decoded
	}
	w.tags("request")
	if w.err != nil {
		return 0, w.err
	}
	return decodeFactor * int64(len(body)-w.records), nil
}

// walker reads through a request body as kmsg would, without allocating,
// and checks that every array count and length fits in the bytes left.
// After the first error it does nothing more.
type walker struct {
	b        []byte
	flexible bool
	// records is the bytes of the record batches seen (which kmsg does
	// not copy).
	records int
	err     error
}

func (w *walker) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf(format, args...)
		w.b = nil
	}
}

func (w *walker) fixed(n int, what string) {
	if w.err != nil {
		return
	}
	if len(w.b) < n {
		w.fail("%s: %d bytes left, want %d", what, len(w.b), n)
		return
	}
	w.b = w.b[n:]
}

// length reads the length or count of a field: int16 or int32 (size
// bytes) before flexible versions, an unsigned varint of the length plus
// one in them. Negative is null.
func (w *walker) length(size int, what string) int64 {
	if w.err != nil {
		return 0
	}
	if w.flexible {
		v, n := binary.Uvarint(w.b)
		if n <= 0 || v > 1<<32 {
			w.fail("%s: bad length (%d bytes left)", what, len(w.b))
			return 0
		}
		w.b = w.b[n:]
		return int64(v) - 1
	}
	if len(w.b) < size {
		w.fail("%s: %d bytes left, want %d", what, len(w.b), size)
		return 0
	}
	var v int64
	if size == 2 {
		v = int64(int16(binary.BigEndian.Uint16(w.b)))
	} else {
		v = int64(int32(binary.BigEndian.Uint32(w.b)))
	}
	w.b = w.b[size:]
	return v
}

// span skips a field of n bytes (a null one when n is negative).
func (w *walker) span(n int64, what string) {
	if w.err != nil || n <= 0 {
		return
	}
	if n > int64(len(w.b)) {
		w.fail("%s of %d bytes with %d left", what, n, len(w.b))
		return
	}
	w.b = w.b[n:]
}

func (w *walker) str(what string) { w.span(w.length(2, what), what) }

// array reads an array's count and calls each for every element; an
// element takes a byte at least, so a count above the bytes left is an
// error before any element is read.
func (w *walker) array(what string, each func()) {
	n := w.length(4, what)
	if w.err != nil {
		return
	}
	if n > int64(len(w.b)) {
		w.fail("%s: %d elements claimed in %d bytes", what, n, len(w.b))
		return
	}
	for i := int64(0); i < n; i++ {
		if each(); w.err != nil {
			w.err = fmt.Errorf("%s[%d] of %d: %w", what, i, n, w.err)
			return
		}
	}
}

// tags skips a tagged-field section (flexible versions only): a count,
// then each tag's key, size and bytes; a tag takes two bytes at least.
func (w *walker) tags(what string) {
	if w.err != nil || !w.flexible {
		return
	}
	n, l := binary.Uvarint(w.b)
	if l <= 0 || n > uint64(len(w.b)-l)/2 {
		w.fail("%s tagged fields: bad count", what)
		return
	}
	w.b = w.b[l:]
	for i := uint64(0); i < n && w.err == nil; i++ {
		if _, l := binary.Uvarint(w.b); l <= 0 {
			w.fail("%s tagged fields: bad key", what)
			return
		}
		w.b = w.b[l:]
		size, l := binary.Uvarint(w.b)
		if l <= 0 || size > uint64(len(w.b)-l) {
			w.fail("%s tagged fields: bad size", what)
			return
		}
		w.b = w.b[l+int(size):]
	}
}

func (w *walker) produce(version int16) {
	if version >= 3 {
		w.str("transactional_id")
	}
	w.fixed(2+4, "acks and timeout_ms")
	w.array("topics", func() {
		if version >= 13 {
			w.fixed(16, "topic_id")
		} else {
			w.str("topic name")
		}
		w.array("partitions", func() {
			w.fixed(4, "partition")
			n := w.length(4, "records")
			w.span(n, "records")
			if w.err == nil && n > 0 {
				w.records += int(n)
			}
			w.tags("partition")
		})
		w.tags("topic")
	})
}

func (w *walker) metadata(version int16) {
	w.array("topics", func() {
		if version >= 10 {
			w.fixed(16, "topic_id")
		}
		w.str("topic name")
		w.tags("topic")
	})
	if version >= 4 {
		w.fixed(1, "allow_auto_topic_creation")
	}
	if version >= 8 && version <= 10 {
		w.fixed(1, "include_cluster_authorized_operations")
	}
	if version >= 8 {
		w.fixed(1, "include_topic_authorized_operations")
	}
}

func (w *walker) findCoordinator(version int16) {
	if version <= 3 {
		w.str("key")
	}
	if version >= 1 {
		w.fixed(1, "key_type")
	}
	if version >= 4 {
		w.array("coordinator_keys", func() { w.str("coordinator key") })
	}
}
