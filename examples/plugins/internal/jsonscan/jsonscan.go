package jsonscan

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 1000

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values.
const (
	Null Kind = iota
	Bool
	Number
	String
	Object
	Array
)

var kindNames = [...]string{"null", "bool", "number", "string", "object", "array"}

// String returns the JSON name of the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is a value met during a walk. It is valid only during the callback.
type Value struct {
	// Kind is the value's type.
	Kind Kind
	// Path holds the names of the object members that lead to the value,
	// from the root, unescaped. Array elements add no step, so a path
	// names the member in every element of an array.
	Path [][]byte
	// Start and End delimit the value in the source: src[Start:End].
	Start, End int
}

// SyntaxError is the error of a document that is not valid JSON.
type SyntaxError struct {
	Offset int    // where the problem was found
	Msg    string // what the problem is
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.Msg)
}

// Path is a parsed dotted path such as "card.number": a list of object member
// names. Names that contain a dot cannot be addressed.
type Path [][]byte

// ParsePath parses a dotted path. Empty paths and empty steps ("a..b", ".a")
// are errors.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, errors.New("empty JSON path")
	}
	var p Path
	for _, step := range strings.Split(s, ".") {
		if step == "" {
			return nil, fmt.Errorf("JSON path %q has an empty step", s)
		}
		p = append(p, []byte(step))
	}
	return p, nil
}

// String returns the dotted form of p.
func (p Path) String() string {
	var b strings.Builder
	for i, step := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.Write(step)
	}
	return b.String()
}

// Match reports whether path, as given in a Value, is p.
func (p Path) Match(path [][]byte) bool {
	if len(p) != len(path) {
		return false
	}
	for i := range p {
		if string(p[i]) != string(path[i]) {
			return false
		}
	}
	return true
}

// Walk checks that src is exactly one JSON value, surrounded by optional white
// space, and calls fn for every value: scalars where they are, objects and
// arrays after their contents (so that their range is known), which puts
// every value after its children. Walk stops at the first syntax error and
// returns it as a *SyntaxError; fn may have seen values before it. A nil fn
// only validates.
func Walk(src []byte, fn func(v *Value)) error {
	w := walker{src: src, fn: fn}
	w.ws()
	w.value()
	w.ws()
	if w.err == nil && w.pos < len(src) {
		w.fail("data after the top-level value")
	}
	return w.err
}

// Valid reports whether src is exactly one JSON value, surrounded by optional
// white space.
func Valid(src []byte) bool { return Walk(src, nil) == nil }

// AppendCompact appends src to dst without the white space outside strings.
// It fails, appending nothing, if src is not valid JSON.
func AppendCompact(dst, src []byte) ([]byte, error) {
	w := walker{src: src, compact: true, out: dst}
	w.ws()
	w.value()
	w.ws()
	if w.err == nil && w.pos < len(src) {
		w.fail("data after the top-level value")
	}
	if w.err != nil {
		return dst, w.err
	}
	return append(w.out, src[w.copied:w.pos]...), nil
}

// AppendString appends s to dst as a JSON string literal.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// AppendUnquoted appends the contents of raw, a valid JSON string literal
// with its quotes (as reported by Walk), to dst, with escapes resolved and
// invalid UTF-8 replaced by U+FFFD, as encoding/json decodes strings.
func AppendUnquoted(dst, raw []byte) []byte {
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Invalid UTF-8 becomes U+FFFD, as in encoding/json.
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size - 1
			continue
		}
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hex4(s[i+1:]))
			i += 4 // at the last hex digit
			if utf16.IsSurrogate(r) {
				// A surrogate pair is two escapes; a lone surrogate
				// becomes U+FFFD, as in encoding/json.
				dec := utf8.RuneError
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					dec = utf16.DecodeRune(r, rune(hex4(s[i+3:])))
				}
				if dec != utf8.RuneError {
					i += 6
				}
				r = dec
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, s[i])
		}
	}
	return dst
}

// hex4 decodes 4 hexadecimal digits, which the walker checked.
func hex4(b []byte) uint16 {
	var v uint16
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint16(c - 'a' + 10)
		default:
			v |= uint16(c - 'A' + 10)
		}
	}
	return v
}

// walker is a recursive-descent parser over src.
type walker struct {
	src   []byte
	pos   int
	fn    func(*Value)
	path  [][]byte
	depth int
	err   error
	v     Value

	// Compaction: the output, and how much of src is in it or skipped.
	compact bool
	out     []byte
	copied  int
}

func (w *walker) fail(msg string) {
	if w.err == nil {
		w.err = &SyntaxError{Offset: w.pos, Msg: msg}
	}
}

func (w *walker) unexpected() {
	if w.pos >= len(w.src) {
		w.fail("unexpected end of input")
		return
	}
	w.fail(fmt.Sprintf("unexpected character %q", w.src[w.pos]))
}

// ws skips white space. When compacting, it first copies what precedes the
// white space to the output.
func (w *walker) ws() {
	start := w.pos
	for w.pos < len(w.src) {
		switch w.src[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
			continue
		}
		break
	}
	if w.compact && w.pos > start {
		w.out = append(w.out, w.src[w.copied:start]...)
		w.copied = w.pos
	}
}

// report calls fn, if any, for the value at src[start:end].
func (w *walker) report(k Kind, start, end int) {
	if w.fn != nil {
		w.v = Value{Kind: k, Path: w.path, Start: start, End: end}
		w.fn(&w.v)
	}
}

// value parses one value and reports it.
func (w *walker) value() {
	if w.pos >= len(w.src) {
		w.unexpected()
		return
	}
	start := w.pos
	switch c := w.src[w.pos]; {
	case c == '{':
		w.container(Object, '}')
	case c == '[':
		w.container(Array, ']')
	case c == '"':
		w.str()
	case c == '-' || (c >= '0' && c <= '9'):
		w.number()
	case c == 't':
		w.literal("true")
	case c == 'f':
		w.literal("false")
	case c == 'n':
		w.literal("null")
	default:
		w.unexpected()
	}
	if w.err == nil {
		w.report(kindOf(w.src[start]), start, w.pos)
	}
}

// kindOf returns the kind of the value that starts with c.
func kindOf(c byte) Kind {
	switch c {
	case '{':
		return Object
	case '[':
		return Array
	case '"':
		return String
	case 't', 'f':
		return Bool
	case 'n':
		return Null
	}
	return Number
}

func (w *walker) literal(lit string) {
	if len(w.src)-w.pos < len(lit) || string(w.src[w.pos:w.pos+len(lit)]) != lit {
		// Point at the first byte that differs.
		for i := 0; i < len(lit) && w.pos < len(w.src) && w.src[w.pos] == lit[i]; i++ {
			w.pos++
		}
		w.unexpected()
		return
	}
	w.pos += len(lit)
}

// container parses an object or an array, whose contents end with closer.
func (w *walker) container(k Kind, closer byte) {
	if w.depth == MaxDepth {
		w.fail("nesting deeper than the limit")
		return
	}
	w.depth++
	w.members(k, closer)
	w.depth--
}

// members parses the contents of an object or an array and its closer.
func (w *walker) members(k Kind, closer byte) {
	w.pos++ // '{' or '['
	w.ws()
	if w.pos < len(w.src) && w.src[w.pos] == closer {
		w.pos++
		return
	}
	for w.err == nil {
		if k == Object {
			if w.pos >= len(w.src) || w.src[w.pos] != '"' {
				w.unexpected()
				return
			}
			nameStart := w.pos
			w.str()
			if w.err != nil {
				return
			}
			if w.fn != nil {
				w.path = append(w.path, w.memberName(nameStart, w.pos))
			}
			w.ws()
			if w.pos >= len(w.src) || w.src[w.pos] != ':' {
				w.unexpected()
				return
			}
			w.pos++
			w.ws()
			w.value()
			if w.fn != nil {
				w.path = w.path[:len(w.path)-1]
			}
		} else {
			w.value()
		}
		if w.err != nil {
			return
		}
		w.ws()
		if w.pos >= len(w.src) {
			w.unexpected()
			return
		}
		switch w.src[w.pos] {
		case ',':
			w.pos++
			w.ws()
		case closer:
			w.pos++
			return
		default:
			w.unexpected()
			return
		}
	}
}

// memberName returns the unescaped name of the member whose string literal is
// src[start:end]. Names without escapes are returned as sub-slices of src.
func (w *walker) memberName(start, end int) []byte {
	raw := w.src[start:end]
	for _, c := range raw {
		if c == '\\' {
			return AppendUnquoted(nil, raw)
		}
	}
	return raw[1 : len(raw)-1]
}

// str parses a string literal.
func (w *walker) str() {
	w.pos++ // '"'
	for w.pos < len(w.src) {
		c := w.src[w.pos]
		switch {
		case c == '"':
			w.pos++
			return
		case c == '\\':
			w.pos++
			if w.pos >= len(w.src) {
				w.unexpected()
				return
			}
			switch w.src[w.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				w.pos++
			case 'u':
				w.pos++
				for i := 0; i < 4; i++ {
					if w.pos >= len(w.src) || !isHex(w.src[w.pos]) {
						w.unexpected()
						return
					}
					w.pos++
				}
			default:
				w.fail(fmt.Sprintf("invalid escape \\%c", w.src[w.pos]))
				return
			}
		case c < 0x20:
			w.fail("control character in string")
			return
		default:
			w.pos++
		}
	}
	w.unexpected()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number parses a number.
func (w *walker) number() {
	if w.src[w.pos] == '-' {
		w.pos++
	}
	switch {
	case w.pos < len(w.src) && w.src[w.pos] == '0':
		w.pos++
	case w.pos < len(w.src) && w.src[w.pos] >= '1' && w.src[w.pos] <= '9':
		w.digits()
	default:
		w.unexpected()
		return
	}
	if w.pos < len(w.src) && w.src[w.pos] == '.' {
		w.pos++
		if !w.digits() {
			w.unexpected()
			return
		}
	}
	if w.pos < len(w.src) && (w.src[w.pos] == 'e' || w.src[w.pos] == 'E') {
		w.pos++
		if w.pos < len(w.src) && (w.src[w.pos] == '+' || w.src[w.pos] == '-') {
			w.pos++
		}
		if !w.digits() {
			w.unexpected()
		}
	}
}

// digits consumes one or more decimal digits and reports whether there was
// one.
func (w *walker) digits() bool {
	start := w.pos
	for w.pos < len(w.src) && w.src[w.pos] >= '0' && w.src[w.pos] <= '9' {
		w.pos++
	}
	return w.pos > start
}
