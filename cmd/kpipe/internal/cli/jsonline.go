package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kpipe/kpipe/internal/topicname"
	"github.com/kpipe/kpipe/plugins"
)

// maxJSONDepth bounds the nesting of a key or value, as encoding/json bounds
// it, so that a hostile line cannot exhaust the stack.
const maxJSONDepth = 10000

// maxInterned bounds how many distinct topic and header names a jsonParser
// keeps to reuse; past it, new names are allocated each time they occur.
const maxInterned = 1024

// jsonParser parses the lines of --format json (docs/cli.md, "Input format
// json") in one pass over the line, with no decoder per line and no
// intermediate values: it validates the JSON, decodes strings, compacts other
// key and value JSON into a scratch buffer it reuses, and then takes the record
// and one byte slice that holds the record's key, value and header values
// (each sliced with its capacity capped, so that appending to one never
// writes over another) from its recordArena; only the headers' slice is
// allocated per line. Topic and header names repeat from line to line and
// are interned. BenchmarkParseJSONRecord measures it; FuzzJSONParser checks
// it against encoding/json.
//
// The line must be UTF-8 text, and a \u escape must not be half of a UTF-16
// surrogate pair: encoding/json would turn either into U+FFFD, and a record is
// sent as written or not at all. The zero value is ready
// to use; a jsonParser is not safe for concurrent use.
type jsonParser struct {
	line []byte
	pos  int
	// data holds the current line's key, value and header values;
	// dataSpans index into it.
	data []byte
	hdrs []headerSpan
	// name holds a decoded field name, header name, topic or timestamp.
	name []byte
	// skip receives values that are only validated (after an error was
	// noted).
	skip  []byte
	names map[string]string
	// lastTopic is the last "topic" checkTopic found valid.
	lastTopic string
	// arena holds the records returned and their bytes; nil means one of
	// the parser's own, made on first use.
	arena *recordArena
	// invalid holds the current line's errors about a field's value, one
	// per field (a repeated field replaces the error of its earlier value;
	// invalid[fieldUnknown] keeps the first unknown field).
	invalid [len(fieldNames)]error
}

// dataSpan is a key, value or header value: data[start:end], or null when
// start < 0.
type dataSpan struct{ start, end int }

var nullSpan = dataSpan{-1, -1}

type headerSpan struct {
	name string
	val  dataSpan
}

// jsonSyntaxError is a line that is not one JSON object.
type jsonSyntaxError struct {
	col int
	msg string
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON record: column %d: %s", e.col, e.msg)
}

func (p *jsonParser) syntax(format string, args ...any) error {
	return &jsonSyntaxError{col: p.pos + 1, msg: fmt.Sprintf(format, args...)}
}

// recordField is a field of the input object.
type recordField int

const (
	fieldUnknown recordField = iota
	fieldTopic
	fieldKey
	fieldValue
	fieldHeaders
	fieldPartition
	fieldTimestamp
	fieldKeyBase64
	fieldValueBase64
)

var fieldNames = [...]string{
	fieldTopic:       "topic",
	fieldKey:         "key",
	fieldValue:       "value",
	fieldHeaders:     "headers",
	fieldPartition:   "partition",
	fieldTimestamp:   "timestamp",
	fieldKeyBase64:   "key_base64",
	fieldValueBase64: "value_base64",
}

// parse parses one line:
//
//	{"topic": "t", "key": "k", "value": {"any": "json"}, "headers": {"h": "v"},
//	 "partition": 2, "timestamp": 1700000000000}
//
// key and value: a JSON string is sent as its text; any other JSON value as
// its compact JSON text; null or absent is null (a null value is a tombstone).
// key_base64 and value_base64 instead (not both): the bytes a standard base64
// string encodes, for data that is not UTF-8 text. headers: an object of string (or null) values, sent in the order given.
// timestamp: milliseconds since the epoch, or an RFC 3339 string. Every field
// is optional; null is the same as absent; a repeated field counts as written
// last; field names match case-insensitively (as with encoding/json); any
// other field makes the line malformed.
//
// A syntax error is reported with its column; an error about a field's value
// is reported once the whole line is known to be valid JSON.
func (p *jsonParser) parse(line []byte) (*plugins.Record, error) {
	p.line, p.pos = line, 0
	p.data, p.hdrs = p.data[:0], p.hdrs[:0]
	var (
		key, value = nullSpan, nullSpan
		// keyB64 and valueB64 are the base64 fields; hasKey and hasValue
		// say whether key and value were given, even as null.
		keyB64, valueB64 = nullSpan, nullSpan
		hasKey, hasValue bool
		topic            string
		hasTopic         bool
		partition        int64
		hasPartition     bool
		ts               time.Time
	)
	p.invalid = [len(fieldNames)]error{}

	p.skipSpace()
	if !p.at('{') {
		if p.pos == len(line) {
			return nil, p.syntax("want a JSON object, got the end of the line")
		}
		return nil, p.syntax("want a JSON object, got %q", line[p.pos])
	}
	p.pos++
	p.skipSpace()
	if p.at('}') {
		p.pos++
	} else {
		for {
			p.skipSpace()
			f, err := p.field()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if !p.at(':') {
				return nil, p.unexpected("':' after a field name")
			}
			p.pos++
			p.skipSpace()
			if f != fieldUnknown {
				p.invalid[f] = nil
			}
			switch f {
			case fieldUnknown:
				p.note(fieldUnknown, fmt.Errorf("invalid JSON record: unknown field %q", p.name))
				err = p.skipValue()
			case fieldKey:
				key, err = p.dataValue()
				hasKey = true
			case fieldValue:
				value, err = p.dataValue()
				hasValue = true
			case fieldKeyBase64:
				keyB64, err = p.base64Value(f)
			case fieldValueBase64:
				valueB64, err = p.base64Value(f)
			case fieldTopic:
				topic, hasTopic = "", false
				switch {
				case p.literal("null"):
				case p.at('"'):
					if p.name, err = p.str(p.name[:0], true); err == nil {
						topic, hasTopic = p.intern(p.name), true
						if terr := p.checkTopic(topic); terr != nil {
							p.note(fieldTopic, terr)
						}
					}
				default:
					p.note(fieldTopic, errors.New(`invalid JSON record: "topic" must be a string`))
					err = p.skipValue()
				}
			case fieldHeaders:
				err = p.headers()
			case fieldPartition:
				hasPartition = false
				switch {
				case p.literal("null"):
				case p.atNumber():
					var n int64
					var ok bool
					n, ok, err = p.integer()
					switch {
					case err != nil:
					case ok && n < 0:
						p.note(fieldPartition, fmt.Errorf(`"partition" must not be negative, got %d`, n))
					case ok && n <= math.MaxInt32:
						partition, hasPartition = n, true
					default:
						p.note(fieldPartition, fmt.Errorf(`invalid JSON record: "partition" must be a whole number from 0 to %d, got %s`, math.MaxInt32, p.skip))
					}
				default:
					p.note(fieldPartition, errors.New(`invalid JSON record: "partition" must be a number`))
					err = p.skipValue()
				}
			case fieldTimestamp:
				ts = time.Time{}
				switch {
				case p.literal("null"):
				case p.at('"'):
					if p.name, err = p.str(p.name[:0], true); err == nil {
						t, perr := time.Parse(time.RFC3339Nano, string(p.name))
						if perr != nil {
							p.note(fieldTimestamp, fmt.Errorf(`"timestamp": want milliseconds since the epoch or an RFC 3339 time: %w`, perr))
						}
						ts = t
					}
				case p.atNumber():
					var n int64
					var ok bool
					if n, ok, err = p.integer(); err == nil && !ok {
						p.note(fieldTimestamp, fmt.Errorf(`"timestamp": want milliseconds since the epoch or an RFC 3339 time, got %s`, p.skip))
					}
					ts = time.UnixMilli(n)
				default:
					start := p.pos
					if err = p.skipValue(); err == nil {
						p.note(fieldTimestamp, fmt.Errorf(`"timestamp": want milliseconds since the epoch or an RFC 3339 time, got %s`, line[start:p.pos]))
					}
				}
			}
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.at(',') {
				p.pos++
				continue
			}
			if p.at('}') {
				p.pos++
				break
			}
			return nil, p.unexpected("',' or '}' after a field")
		}
	}
	p.skipSpace()
	if p.pos < len(line) {
		if c := line[p.pos]; c == '{' || c == '[' || c == '"' || c == '-' || c == 't' || c == 'f' || c == 'n' || '0' <= c && c <= '9' {
			return nil, errors.New("invalid JSON record: more than one JSON value on the line")
		}
		return nil, p.unexpected("the end of the line after the record")
	}
	for _, err := range p.invalid {
		if err != nil {
			return nil, err
		}
	}
	if hasTopic && topic == "" {
		return nil, errors.New(`"topic" must not be empty`)
	}
	if keyB64 != nullSpan {
		if hasKey {
			return nil, errors.New(`"key" and "key_base64": give one of them, not both`)
		}
		key = keyB64
	}
	if valueB64 != nullSpan {
		if hasValue {
			return nil, errors.New(`"value" and "value_base64": give one of them, not both`)
		}
		value = valueB64
	}

	if p.arena == nil {
		p.arena = new(recordArena)
	}
	r := p.arena.record()
	r.Topic, r.Timestamp = topic, ts
	if hasPartition {
		r.SetPartition(int32(partition))
	}
	// One slice for every byte the record owns; never nil, so that an
	// empty key or value stays empty rather than null.
	own := p.arena.copy(p.data)
	slice := func(s dataSpan) []byte {
		if s.start < 0 {
			return nil
		}
		return own[s.start:s.end:s.end]
	}
	r.Key, r.Value = slice(key), slice(value)
	if len(p.hdrs) > 0 {
		r.Headers = make([]plugins.Header, len(p.hdrs))
		for i, h := range p.hdrs {
			r.Headers[i] = plugins.Header{Key: h.name, Value: slice(h.val)}
		}
	}
	return r, nil
}

// field reads a field name and says which field it is; p.name holds the name.
func (p *jsonParser) field() (recordField, error) {
	if !p.at('"') {
		return fieldUnknown, p.unexpected("a field name")
	}
	var err error
	if p.name, err = p.str(p.name[:0], true); err != nil {
		return fieldUnknown, err
	}
	switch string(p.name) {
	case "key":
		return fieldKey, nil
	case "value":
		return fieldValue, nil
	case "headers":
		return fieldHeaders, nil
	case "topic":
		return fieldTopic, nil
	case "partition":
		return fieldPartition, nil
	case "timestamp":
		return fieldTimestamp, nil
	case "key_base64":
		return fieldKeyBase64, nil
	case "value_base64":
		return fieldValueBase64, nil
	}
	for f, name := range fieldNames {
		if name != "" && bytes.EqualFold(p.name, []byte(name)) {
			return recordField(f), nil
		}
	}
	return fieldUnknown, nil
}

// dataValue reads a key or value into p.data: a string's text, another
// value's compact JSON text, or null.
func (p *jsonParser) dataValue() (dataSpan, error) {
	if p.literal("null") {
		return nullSpan, nil
	}
	start := len(p.data)
	var err error
	if p.at('"') {
		p.data, err = p.str(p.data, true)
	} else {
		p.data, err = p.value(p.data, 1)
	}
	return dataSpan{start, len(p.data)}, err
}

// base64Value reads key_base64 or value_base64 (field f) into p.data: the
// bytes a standard base64 string encodes, or null.
func (p *jsonParser) base64Value(f recordField) (dataSpan, error) {
	if p.literal("null") {
		return nullSpan, nil
	}
	if !p.at('"') {
		p.note(f, fmt.Errorf("invalid JSON record: %q must be a string (standard base64)", fieldNames[f]))
		return nullSpan, p.skipValue()
	}
	var err error
	if p.name, err = p.str(p.name[:0], true); err != nil {
		return nullSpan, err
	}
	start := len(p.data)
	p.data = append(p.data, make([]byte, base64.StdEncoding.DecodedLen(len(p.name)))...)
	n, err := base64.StdEncoding.Decode(p.data[start:], p.name)
	p.data = p.data[:start+n]
	if err != nil {
		p.note(f, fmt.Errorf("%q: not standard base64: %w", fieldNames[f], err))
	}
	return dataSpan{start, len(p.data)}, nil
}

// headers reads the headers field into p.hdrs, noting a value that is not an
// object of strings or nulls.
func (p *jsonParser) headers() error {
	p.hdrs = p.hdrs[:0]
	if p.literal("null") {
		return nil
	}
	if !p.at('{') {
		p.note(fieldHeaders, errors.New(`"headers": must be an object of string values`))
		return p.skipValue()
	}
	p.pos++
	p.skipSpace()
	if p.at('}') {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		if !p.at('"') {
			return p.unexpected("a header name")
		}
		var err error
		if p.name, err = p.str(p.name[:0], true); err != nil {
			return err
		}
		name := p.intern(p.name)
		p.skipSpace()
		if !p.at(':') {
			return p.unexpected("':' after a header name")
		}
		p.pos++
		p.skipSpace()
		switch {
		case p.literal("null"):
			p.hdrs = append(p.hdrs, headerSpan{name, nullSpan})
		case p.at('"'):
			start := len(p.data)
			if p.data, err = p.str(p.data, true); err != nil {
				return err
			}
			p.hdrs = append(p.hdrs, headerSpan{name, dataSpan{start, len(p.data)}})
		default:
			p.note(fieldHeaders, fmt.Errorf(`"headers": header %q: must be a string or null`, name))
			if err := p.skipValue(); err != nil {
				return err
			}
		}
		p.skipSpace()
		if p.at(',') {
			p.pos++
			continue
		}
		if p.at('}') {
			p.pos++
			return nil
		}
		return p.unexpected("',' or '}' after a header")
	}
}

// note keeps err as the error about field f's value, unless f already has
// one on this line.
func (p *jsonParser) note(f recordField, err error) {
	if p.invalid[f] == nil {
		p.invalid[f] = err
	}
}

// checkTopic returns why a line's non-empty "topic" is not a name Kafka
// accepts (topicname.Check), or nil; a name found valid once is not
// checked again.
func (p *jsonParser) checkTopic(topic string) error {
	if topic == "" || topic == p.lastTopic {
		return nil
	}
	if err := topicname.Check(topic); err != nil {
		return fmt.Errorf(`invalid JSON record: "topic": %w`, err)
	}
	p.lastTopic = topic
	return nil
}

// intern returns b as a string, reusing the string of an earlier equal name.
func (p *jsonParser) intern(b []byte) string {
	if s, ok := p.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.names == nil {
		p.names = make(map[string]string)
	}
	if len(p.names) < maxInterned {
		p.names[s] = s
	}
	return s
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.line) {
		switch p.line[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) at(c byte) bool { return p.pos < len(p.line) && p.line[p.pos] == c }

func (p *jsonParser) atNumber() bool {
	return p.pos < len(p.line) && (p.line[p.pos] == '-' || '0' <= p.line[p.pos] && p.line[p.pos] <= '9')
}

// literal consumes lit (true, false or null) if it is next.
func (p *jsonParser) literal(lit string) bool {
	if len(p.line)-p.pos >= len(lit) && string(p.line[p.pos:p.pos+len(lit)]) == lit {
		p.pos += len(lit)
		return true
	}
	return false
}

// unexpected is the syntax error of finding something other than want.
func (p *jsonParser) unexpected(want string) error {
	if p.pos >= len(p.line) {
		return p.syntax("want %s, got the end of the line", want)
	}
	return p.syntax("want %s, got %q", want, p.line[p.pos])
}

// skipValue validates a value and discards it.
func (p *jsonParser) skipValue() error {
	var err error
	p.skip, err = p.value(p.skip[:0], 1)
	return err
}

// value appends the compact text of the JSON value at p.pos to dst.
func (p *jsonParser) value(dst []byte, depth int) ([]byte, error) {
	if p.pos >= len(p.line) {
		return dst, p.unexpected("a value")
	}
	switch c := p.line[p.pos]; c {
	case '"':
		return p.str(dst, false)
	case '{', '[':
		if depth >= maxJSONDepth {
			return dst, p.syntax("nested more than %d deep", maxJSONDepth)
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		dst = append(dst, c)
		p.pos++
		p.skipSpace()
		if p.at(end) {
			p.pos++
			return append(dst, end), nil
		}
		for {
			p.skipSpace()
			var err error
			if c == '{' {
				if !p.at('"') {
					return dst, p.unexpected("a member name")
				}
				if dst, err = p.str(dst, false); err != nil {
					return dst, err
				}
				p.skipSpace()
				if !p.at(':') {
					return dst, p.unexpected("':' after a member name")
				}
				p.pos++
				dst = append(dst, ':')
				p.skipSpace()
			}
			if dst, err = p.value(dst, depth+1); err != nil {
				return dst, err
			}
			p.skipSpace()
			if p.at(',') {
				p.pos++
				dst = append(dst, ',')
				continue
			}
			if p.at(end) {
				p.pos++
				return append(dst, end), nil
			}
			return dst, p.unexpected(fmt.Sprintf("',' or '%c'", end))
		}
	case 't', 'f', 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if p.literal(lit) {
				return append(dst, lit...), nil
			}
		}
		return dst, p.unexpected("a value")
	}
	start := p.pos
	if _, err := p.number(); err != nil {
		return dst, err
	}
	return append(dst, p.line[start:p.pos]...), nil
}

// number reads a JSON number and says whether it is an integer (no fraction,
// no exponent).
func (p *jsonParser) number() (isInt bool, err error) {
	digits := func() int {
		n := 0
		for p.pos < len(p.line) && '0' <= p.line[p.pos] && p.line[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.at('-') {
		p.pos++
	}
	switch {
	case p.at('0'):
		p.pos++
	case digits() == 0:
		return false, p.unexpected("a value")
	}
	isInt = true
	if p.at('.') {
		p.pos++
		if digits() == 0 {
			return false, p.unexpected("a digit after the decimal point")
		}
		isInt = false
	}
	if p.at('e') || p.at('E') {
		p.pos++
		if p.at('+') || p.at('-') {
			p.pos++
		}
		if digits() == 0 {
			return false, p.unexpected("a digit in the exponent")
		}
		isInt = false
	}
	return isInt, nil
}

// integer reads a number; ok says whether it is an integer that fits in an
// int64. p.skip holds the number's text.
func (p *jsonParser) integer() (n int64, ok bool, err error) {
	start := p.pos
	isInt, err := p.number()
	if err != nil {
		return 0, false, err
	}
	text := p.line[start:p.pos]
	p.skip = append(p.skip[:0], text...)
	if !isInt {
		return 0, false, nil
	}
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	var u uint64
	for _, c := range text {
		if u > (math.MaxUint64-9)/10 {
			return 0, false, nil
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true, nil
	case !neg && u <= math.MaxInt64:
		return int64(u), true, nil
	}
	return 0, false, nil
}

// plainASCII says which bytes a string holds as they are: printable ASCII
// other than '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Bytes repeated in every byte of a word, for skipPlainASCII.
const (
	ones      = 0x0101010101010101
	highBits  = 0x8080808080808080
	quotes    = '"' * ones
	backslash = '\\' * ones
)

// skipPlainASCII returns the position of the first byte of line from pos on
// that plainASCII does not hold as it is, or len(line). It tests eight bytes
// at a time: a string in a JSON line is mostly such bytes, and str spends
// most of its time here (BenchmarkParseJSONRecord).
func skipPlainASCII(line []byte, pos int) int {
	for pos+8 <= len(line) {
		x := binary.LittleEndian.Uint64(line[pos:])
		// The high bit of a byte of special is set if the byte is
		// below 0x20, a quote or a backslash (each with the usual
		// test for a zero byte, (v - 0x01..) &^ v, which finds a zero
		// byte and never misses one), or not ASCII (x itself).
		q, b := x^quotes, x^backslash
		special := ((x - 0x20*ones) &^ x) | ((q - ones) &^ q) | ((b - ones) &^ b) | x
		if special&highBits != 0 {
			break
		}
		pos += 8
	}
	for pos < len(line) && plainASCII[line[pos]] {
		pos++
	}
	return pos
}

// str reads the string at p.pos and appends to dst its decoded text (decode)
// or its JSON text as written. It rejects control characters, bad escapes,
// invalid UTF-8 and \u escapes of half a UTF-16 surrogate pair.
func (p *jsonParser) str(dst []byte, decode bool) ([]byte, error) {
	line := p.line
	lit := p.pos // start of the bytes not yet appended
	pos := p.pos + 1
	if decode {
		lit = pos
	}
	for pos < len(line) {
		pos = skipPlainASCII(line, pos)
		if pos == len(line) {
			break
		}
		c := line[pos]
		switch {
		case c == '"':
			if !decode {
				pos++
				p.pos = pos
				return append(dst, line[lit:pos]...), nil
			}
			dst = append(dst, line[lit:pos]...)
			p.pos = pos + 1
			return dst, nil
		case c == '\\':
			if decode {
				dst = append(dst, line[lit:pos]...)
			}
			p.pos = pos
			var err error
			if dst, err = p.escape(dst, decode); err != nil {
				return dst, err
			}
			pos = p.pos
			if decode {
				lit = pos
			}
		case c < 0x20:
			p.pos = pos
			return dst, p.syntax("control character %q in a string", c)
		default:
			r, size := utf8.DecodeRune(line[pos:])
			if r == utf8.RuneError && size == 1 {
				return dst, fmt.Errorf("column %d: byte 0x%02x is not valid UTF-8: JSON input must be UTF-8 text; "+
					"give bytes that are not with key_base64 / value_base64", pos+1, c)
			}
			pos += size
		}
	}
	p.pos = pos
	return dst, p.syntax("string not terminated")
}

// escape reads the escape sequence at p.pos, appending what it stands for to
// dst when decode is set.
func (p *jsonParser) escape(dst []byte, decode bool) ([]byte, error) {
	if p.pos+1 >= len(p.line) {
		p.pos++
		return dst, p.syntax("string not terminated")
	}
	var b byte
	switch c := p.line[p.pos+1]; c {
	case '"', '\\', '/':
		b = c
	case 'b':
		b = '\b'
	case 'f':
		b = '\f'
	case 'n':
		b = '\n'
	case 'r':
		b = '\r'
	case 't':
		b = '\t'
	case 'u':
		r, ok := p.hex4(p.pos + 2)
		if !ok {
			p.pos += 2
			return dst, p.syntax(`want four hexadecimal digits after \u`)
		}
		start := p.pos
		p.pos += 6
		if utf16.IsSurrogate(r) {
			// Only a high surrogate escape followed by a low one is a
			// character.
			d := utf8.RuneError
			if p.at('\\') && p.pos+1 < len(p.line) && p.line[p.pos+1] == 'u' {
				if r2, ok := p.hex4(p.pos + 2); ok {
					d = utf16.DecodeRune(r, r2)
				}
			}
			if d == utf8.RuneError {
				return dst, fmt.Errorf("column %d: %s is half of a UTF-16 surrogate pair, not a character; "+
					"give bytes that are not UTF-8 text with key_base64 / value_base64", start+1, p.line[start:start+6])
			}
			p.pos += 6
			r = d
		}
		if decode {
			dst = utf8.AppendRune(dst, r)
		}
		return dst, nil
	default:
		p.pos++
		return dst, p.syntax(`invalid escape '\%c' in a string`, c)
	}
	p.pos += 2
	if decode {
		dst = append(dst, b)
	}
	return dst, nil
}

// hex4 decodes the four hexadecimal digits at i.
func (p *jsonParser) hex4(i int) (rune, bool) {
	if i+4 > len(p.line) {
		return 0, false
	}
	var r rune
	for _, c := range p.line[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
