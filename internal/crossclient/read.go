package crossclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"github.com/kpipe/kpipe/plugins"
)

// Record is a record as a consumer saw it. A nil Key, Value or header Value is
// a null one; an empty non-nil slice is present but empty.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []plugins.Header
}

// String formats r for test failures: byte strings are quoted Go strings, so
// binary data, empty and null values are all told apart.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "p%d@%d key=%s value=%s", r.Partition, r.Offset, quote(r.Key), quote(r.Value))
	for _, h := range r.Headers {
		fmt.Fprintf(&b, " %q=%s", h.Key, quote(h.Value))
	}
	return b.String()
}

func quote(b []byte) string {
	if b == nil {
		return "null"
	}
	return strconv.Quote(string(b))
}

// Equal reports whether r and o hold the same partition, offset, key, value
// and headers (in order), telling null apart from empty.
func (r Record) Equal(o Record) bool {
	if r.Partition != o.Partition || r.Offset != o.Offset ||
		!bytesEqual(r.Key, o.Key) || !bytesEqual(r.Value, o.Value) ||
		len(r.Headers) != len(o.Headers) {
		return false
	}
	for i, h := range r.Headers {
		if h.Key != o.Headers[i].Key || !bytesEqual(h.Value, o.Headers[i].Value) {
			return false
		}
	}
	return true
}

func bytesEqual(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// Diff compares two record lists, both sorted by partition then offset, and
// returns one line per difference, or nil if they are equal. Offsets take
// part in the comparison: pass lists read from the same topic.
func Diff(want, got []Record) []string {
	var out []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && before(want[i], got[j])):
			out = append(out, "missing:    "+want[i].String())
			i++
		case i == len(want) || before(got[j], want[i]):
			out = append(out, "unexpected: "+got[j].String())
			j++
		default:
			if !want[i].Equal(got[j]) {
				out = append(out, "want:       "+want[i].String(), "got:        "+got[j].String())
			}
			i++
			j++
		}
	}
	return out
}

func before(a, b Record) bool {
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return a.Offset < b.Offset
}

func sortRecords(rs []Record) {
	sort.Slice(rs, func(i, j int) bool { return before(rs[i], rs[j]) })
}

// Isolation is the isolation level a reader consumes with.
type Isolation string

// The isolation levels, spelled as librdkafka and kafka-python spell them.
const (
	ReadCommitted   Isolation = "read_committed"
	ReadUncommitted Isolation = "read_uncommitted"
)

// ReadKcat consumes every partition of topic from the beginning to its end
// with kcat (the binary at path kcat) and returns the records sorted by
// partition and offset. brokers is a comma-separated bootstrap list.
//
// kcat runs twice: once with a -f format that prints key and value lengths,
// so that keys and values come back byte for byte, and once with -J for the
// headers. kcat's JSON writes header values as text, so a header value that
// is not valid UTF-8 does not survive; tests keep header values textual.
func ReadKcat(ctx context.Context, kcat, brokers, topic string, iso Isolation) ([]Record, error) {
	base := []string{"-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=" + string(iso)}

	raw, err := run(ctx, kcat, append(base, "-f", `%p %o %K %S\n%k%s\n`)...)
	if err != nil {
		return nil, err
	}
	recs, err := parseKcatFormat(raw)
	if err != nil {
		return nil, fmt.Errorf("kcat -f output: %w", err)
	}

	js, err := run(ctx, kcat, append(base, "-J")...)
	if err != nil {
		return nil, err
	}
	headers, err := parseKcatJSONHeaders(js)
	if err != nil {
		return nil, fmt.Errorf("kcat -J output: %w", err)
	}
	if len(headers) != len(recs) {
		return nil, fmt.Errorf("kcat read %d records with -f but %d with -J", len(recs), len(headers))
	}
	for i := range recs {
		hs, ok := headers[[2]int64{int64(recs[i].Partition), recs[i].Offset}]
		if !ok {
			return nil, fmt.Errorf("kcat -J did not return p%d@%d", recs[i].Partition, recs[i].Offset)
		}
		recs[i].Headers = hs
	}
	sortRecords(recs)
	return recs, nil
}

// parseKcatFormat parses the output of -f '%p %o %K %S\n%k%s\n'.
func parseKcatFormat(out []byte) ([]Record, error) {
	var recs []Record
	rd := bufio.NewReader(bytes.NewReader(out))
	for {
		line, err := rd.ReadString('\n')
		if err == io.EOF && line == "" {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("truncated record header %q: %w", line, err)
		}
		var (
			r          Record
			klen, vlen int
		)
		if _, err := fmt.Sscanf(line, "%d %d %d %d\n", &r.Partition, &r.Offset, &klen, &vlen); err != nil {
			return nil, fmt.Errorf("record header %q: %w", line, err)
		}
		if r.Key, err = readN(rd, klen); err != nil {
			return nil, fmt.Errorf("key of p%d@%d: %w", r.Partition, r.Offset, err)
		}
		if r.Value, err = readN(rd, vlen); err != nil {
			return nil, fmt.Errorf("value of p%d@%d: %w", r.Partition, r.Offset, err)
		}
		if nl, err := rd.ReadByte(); err != nil || nl != '\n' {
			return nil, fmt.Errorf("p%d@%d: no newline after the value", r.Partition, r.Offset)
		}
		recs = append(recs, r)
	}
}

// readN reads n bytes; n == -1 is null (nil), n == 0 is empty (non-nil).
func readN(rd io.Reader, n int) ([]byte, error) {
	if n < 0 {
		return nil, nil
	}
	b := make([]byte, n)
	_, err := io.ReadFull(rd, b)
	return b, err
}

// parseKcatJSONHeaders parses kcat -J lines into the headers of each
// (partition, offset). kcat writes headers as a flat [name, value, ...] list.
func parseKcatJSONHeaders(out []byte) (map[[2]int64][]plugins.Header, error) {
	m := make(map[[2]int64][]plugins.Header)
	for line := range bytes.Lines(out) {
		var env struct {
			Partition int64     `json:"partition"`
			Offset    int64     `json:"offset"`
			Headers   []*string `json:"headers"`
		}
		if err := json.Unmarshal(line, &env); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		if len(env.Headers)%2 != 0 {
			return nil, fmt.Errorf("p%d@%d: odd header list %q", env.Partition, env.Offset, line)
		}
		var hs []plugins.Header
		for i := 0; i < len(env.Headers); i += 2 {
			if env.Headers[i] == nil {
				return nil, fmt.Errorf("p%d@%d: null header name", env.Partition, env.Offset)
			}
			h := plugins.Header{Key: *env.Headers[i]}
			if v := env.Headers[i+1]; v != nil {
				h.Value = []byte(*v)
			}
			hs = append(hs, h)
		}
		m[[2]int64{env.Partition, env.Offset}] = hs
	}
	return m, nil
}

// ReadPython consumes every partition of topic from the beginning to its end
// with kafka-python, through the script scripts/kafka_read.py (at path
// script, run by python), and returns the records sorted by partition and
// offset.
func ReadPython(ctx context.Context, python, script, brokers, topic string, iso Isolation) ([]Record, error) {
	out, err := run(ctx, python, script, "--bootstrap", brokers, "--topic", topic, "--isolation", string(iso))
	if err != nil {
		return nil, err
	}
	var recs []Record
	for line := range bytes.Lines(out) {
		var l struct {
			Partition int32        `json:"partition"`
			Offset    int64        `json:"offset"`
			Key       *string      `json:"key"`
			Value     *string      `json:"value"`
			Headers   [][2]*string `json:"headers"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("kafka_read.py line %q: %w", line, err)
		}
		r := Record{Partition: l.Partition, Offset: l.Offset}
		if r.Key, err = unhex(l.Key); err != nil {
			return nil, fmt.Errorf("key of p%d@%d: %w", r.Partition, r.Offset, err)
		}
		if r.Value, err = unhex(l.Value); err != nil {
			return nil, fmt.Errorf("value of p%d@%d: %w", r.Partition, r.Offset, err)
		}
		for _, h := range l.Headers {
			if h[0] == nil {
				return nil, fmt.Errorf("p%d@%d: null header name", r.Partition, r.Offset)
			}
			v, err := unhex(h[1])
			if err != nil {
				return nil, fmt.Errorf("header %q of p%d@%d: %w", *h[0], r.Partition, r.Offset, err)
			}
			r.Headers = append(r.Headers, plugins.Header{Key: *h[0], Value: v})
		}
		recs = append(recs, r)
	}
	sortRecords(recs)
	return recs, nil
}

func unhex(s *string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	b, err := hex.DecodeString(*s)
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

// run runs a command and returns its standard output; on failure the error
// carries the command line and its standard error.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
