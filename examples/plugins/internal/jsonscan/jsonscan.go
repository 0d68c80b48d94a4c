package jsonscan

import (
	"encoding/binary"
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
	if fn != nil {
		w.st = &walkState{}
		w.st.path = w.st.pathBuf[:0]
	}
	return w.document(cand{})
}

// document parses src as one value surrounded by optional white space.
func (w *walker) document(c cand) error {
	w.ws()
	w.value(c)
	w.ws()
	if w.err == nil && w.pos < len(w.src) {
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
	if err := w.document(cand{}); err != nil {
		return dst, err
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

// walker is a recursive-descent parser over src. Its loops keep positions in
// locals and scan runs of bytes without a call per byte: compiled to
// WebAssembly, Go pays for every call and every field access
// (BenchmarkWalk, BenchmarkMatcher, BenchmarkAppendCompact).
type walker struct {
	src   []byte
	pos   int
	depth int
	err   error

	// Walk: the callback and the state it sees.
	fn func(*Value)
	st *walkState

	// Matcher.Walk: the matcher and its callback.
	m   *Matcher
	mfn func(id, start, end int)

	// AppendCompact: the output, and how much of src is in it or skipped.
	compact bool
	out     []byte
	copied  int
}

// walkState is what Walk hands to its callback, allocated once per walk.
type walkState struct {
	v       Value
	path    [][]byte
	pathBuf [8][]byte
}

// cand is the set of a Matcher's paths still possible at a value: the
// sorted paths[lo:hi] share the value's first d steps; paths[lo:mid] have
// exactly d steps, so they name the value itself.
type cand struct{ lo, mid, hi, d int }

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

// ws skips white space; every white space byte is at most ' ', and so is no
// byte that may start a token, so one comparison tells there is none.
func (w *walker) ws() {
	if w.pos < len(w.src) && w.src[w.pos] <= ' ' {
		w.skipWS()
	}
}

// skipWS skips white space. When compacting, it first copies what precedes
// the white space to the output. It is not inlined so that ws is.
//
//go:noinline
func (w *walker) skipWS() {
	src, i := w.src, w.pos
	for i < len(src) {
		if c := src[i]; c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			break
		}
		i++
	}
	if w.compact && i > w.pos {
		w.out = append(w.out, src[w.copied:w.pos]...)
		w.copied = i
	}
	w.pos = i
}

// value parses one value at w.pos and reports it; c holds the matcher's
// candidate paths, if any.
func (w *walker) value(c cand) {
	src := w.src
	start := w.pos
	if start >= len(src) {
		w.unexpected()
		return
	}
	var k Kind
	switch b := src[start]; {
	case b == '"':
		k = String
		w.str()
	case b == '{':
		k = Object
		w.object(c)
	case b == '[':
		k = Array
		w.array(c)
	case b == '-' || b-'0' <= 9:
		k = Number
		w.number()
	case b == 't':
		k = Bool
		w.literal("true")
	case b == 'f':
		k = Bool
		w.literal("false")
	case b == 'n':
		k = Null
		w.literal("null")
	default:
		w.unexpected()
	}
	if w.err != nil {
		return
	}
	if w.fn != nil {
		w.st.v = Value{Kind: k, Path: w.st.path, Start: start, End: w.pos}
		w.fn(&w.st.v)
	}
	for i := c.lo; i < c.mid; i++ {
		w.mfn(w.m.ids[i], start, w.pos)
	}
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

// enter counts one more level of nesting, failing past MaxDepth.
func (w *walker) enter() bool {
	if w.depth == MaxDepth {
		w.fail("nesting deeper than the limit")
		return false
	}
	w.depth++
	return true
}

// next parses what follows a member or an element: a comma (true) or the
// closer (false, and w.pos past it).
func (w *walker) next(closer byte) bool {
	w.ws()
	if w.pos < len(w.src) {
		switch w.src[w.pos] {
		case ',':
			w.pos++
			w.ws()
			return true
		case closer:
			w.pos++
			return false
		}
	}
	w.unexpected()
	return false
}

// array parses an array. Its elements have the array's path, so they get
// the array's candidates.
func (w *walker) array(c cand) {
	if !w.enter() {
		return
	}
	w.pos++ // '['
	w.ws()
	if w.pos < len(w.src) && w.src[w.pos] == ']' {
		w.pos++
	} else {
		for {
			w.value(c)
			if w.err != nil || !w.next(']') {
				break
			}
		}
	}
	w.depth--
}

// object parses an object.
func (w *walker) object(c cand) {
	if !w.enter() {
		return
	}
	w.pos++ // '{'
	w.ws()
	if w.pos < len(w.src) && w.src[w.pos] == '}' {
		w.pos++
		w.depth--
		return
	}
	for {
		if w.pos >= len(w.src) || w.src[w.pos] != '"' {
			w.unexpected()
			return
		}
		nameStart := w.pos
		escaped := w.str()
		if w.err != nil {
			return
		}
		nameEnd := w.pos
		w.ws()
		if w.pos >= len(w.src) || w.src[w.pos] != ':' {
			w.unexpected()
			return
		}
		w.pos++
		w.ws()
		var cc cand
		if c.mid < c.hi {
			cc = w.m.step(c, w.src[nameStart:nameEnd], escaped)
		}
		if w.fn != nil {
			w.st.path = append(w.st.path, memberName(w.src[nameStart:nameEnd], escaped))
			w.value(cc)
			w.st.path = w.st.path[:len(w.st.path)-1]
		} else {
			w.value(cc)
		}
		if w.err != nil || !w.next('}') {
			break
		}
	}
	w.depth--
}

// memberName returns the unescaped name of the member whose string literal is
// raw. Names without escapes are returned as sub-slices of raw.
func memberName(raw []byte, escaped bool) []byte {
	if escaped {
		return AppendUnquoted(nil, raw)
	}
	return raw[1 : len(raw)-1]
}

// plain[c] is whether byte c stands for itself inside a string literal.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun returns the end of the run of plain bytes at src[i:]. It tests
// eight bytes at a time while it can, which in WebAssembly takes about half
// the time of a loop over the bytes (BenchmarkPlainRun).
func plainRun(src []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(src); i += 8 {
		v := binary.LittleEndian.Uint64(src[i:])
		q := v ^ ('"' * ones)
		b := v ^ ('\\' * ones)
		// A byte of q or b is zero where v has a quote or a backslash;
		// v-0x20 borrows where a byte is below 0x20. Each term sets a
		// byte's high bit where that holds, and maybe in bytes after
		// the first that does, never before it.
		if ((q-ones)&^q|(b-ones)&^b|(v-0x20*ones)&^v)&highs != 0 {
			break
		}
	}
	for i < len(src) && plain[src[i]] {
		i++
	}
	return i
}

// str parses a string literal and reports whether it has escapes.
func (w *walker) str() (escaped bool) {
	src := w.src
	i := w.pos + 1 // past '"'
	for {
		i = plainRun(src, i)
		if i >= len(src) {
			w.pos = i
			w.unexpected()
			return
		}
		switch src[i] {
		case '"':
			w.pos = i + 1
			return
		case '\\':
		default:
			w.pos = i
			w.fail("control character in string")
			return
		}
		escaped = true
		i++
		if i >= len(src) {
			w.pos = i
			w.unexpected()
			return
		}
		switch src[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			i++
			for j := 0; j < 4; j++ {
				if i >= len(src) || !isHex(src[i]) {
					w.pos = i
					w.unexpected()
					return
				}
				i++
			}
		default:
			w.pos = i
			w.fail(fmt.Sprintf("invalid escape \\%c", src[i]))
			return
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number parses a number.
func (w *walker) number() {
	src, i := w.src, w.pos
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && src[i]-'1' < 9:
		i = digits(src, i+1)
	default:
		w.pos = i
		w.unexpected()
		return
	}
	if i < len(src) && src[i] == '.' {
		j := digits(src, i+1)
		if j == i+1 {
			w.pos = j
			w.unexpected()
			return
		}
		i = j
	}
	if i < len(src) && src[i]|0x20 == 'e' {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		j := digits(src, i)
		if j == i {
			w.pos = j
			w.unexpected()
			return
		}
		i = j
	}
	w.pos = i
}

// digits returns the end of the run of decimal digits at src[i:].
func digits(src []byte, i int) int {
	for i < len(src) && src[i]-'0' <= 9 {
		i++
	}
	return i
}
