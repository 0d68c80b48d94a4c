package config

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/kpipe/kpipe/internal/suggest"
)

// decoder turns attribute expressions into Go values, collecting every
// diagnostic instead of stopping at the first.
type decoder struct {
	ctx   *hcl.EvalContext
	dir   string
	diags hcl.Diagnostics
	// kafkaAttrs are the kafka block's attributes, for the rules of other
	// blocks that involve them.
	kafkaAttrs hcl.Attributes
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

// oneOf reports whether s, the value of attr, is one of allowed; if not, it
// reports an error that lists the allowed values and suggests the closest
// one, if one is close.
func (d *decoder) oneOf(attr *hcl.Attribute, s string, allowed ...string) bool {
	if slices.Contains(allowed, s) {
		return true
	}
	d.errorf(attr.Expr.Range(), "Invalid "+attr.Name, "%s must be %s, not %q.%s",
		attr.Name, suggest.Quoted(allowed), s, suggest.Hint(s, allowed, "%q"))
	return false
}

// value evaluates an attribute. It fails on evaluation errors and on null.
func (d *decoder) value(attr *hcl.Attribute) (cty.Value, bool) {
	v, diags := attr.Expr.Value(d.ctx)
	envDiagnostics(diags)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if v.IsNull() {
		d.errorf(attr.Expr.Range(), "Invalid value", "%s must not be null.", attr.Name)
		return cty.NilVal, false
	}
	return v, true
}

func (d *decoder) convert(attr *hcl.Attribute, ty cty.Type) (cty.Value, bool) {
	v, ok := d.value(attr)
	if !ok {
		return cty.NilVal, false
	}
	c, err := convert.Convert(v, ty)
	if err != nil {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			"%s must be a %s: %s.", attr.Name, ty.FriendlyName(), err)
		return cty.NilVal, false
	}
	return c, true
}

func (d *decoder) string(attr *hcl.Attribute) (string, bool) {
	v, ok := d.convert(attr, cty.String)
	if !ok {
		return "", false
	}
	return v.AsString(), true
}

func (d *decoder) bool(attr *hcl.Attribute) (bool, bool) {
	v, ok := d.convert(attr, cty.Bool)
	if !ok {
		return false, false
	}
	return v.True(), true
}

// int decodes a whole number in [lo, hi].
func (d *decoder) int(attr *hcl.Attribute, lo, hi int64) (int, bool) {
	v, ok := d.convert(attr, cty.Number)
	if !ok {
		return 0, false
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != big.Exact || n < lo || n > hi {
		d.errorf(attr.Expr.Range(), "Invalid value", "%s must be a whole number from %d to %d, got %s.",
			attr.Name, lo, hi, v.AsBigFloat().Text('g', -1))
		return 0, false
	}
	return int(n), true
}

// stringList accepts a list of strings, or one string of comma-separated
// items (handy with env()).
func (d *decoder) stringList(attr *hcl.Attribute) ([]string, bool) {
	v, ok := d.value(attr)
	if !ok {
		return nil, false
	}
	if v.Type() == cty.String {
		return strings.Split(v.AsString(), ","), true
	}
	c, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || c.IsNull() {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			`%s must be a list of strings, or a string of comma-separated items.`, attr.Name)
		return nil, false
	}
	var out []string
	for _, e := range c.AsValueSlice() {
		if e.IsNull() {
			d.errorf(attr.Expr.Range(), "Invalid value", "%s must not contain null.", attr.Name)
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}

// isList reports whether attr, which evaluates without errors, is a list,
// tuple or set rather than a string.
func (d *decoder) isList(attr *hcl.Attribute) bool {
	v, _ := attr.Expr.Value(d.ctx)
	t := v.Type()
	return t.IsListType() || t.IsTupleType() || t.IsSetType()
}

// duration decodes a Go duration string ("200ms", "1m30s"). zeroOK allows
// "0" and "0s".
func (d *decoder) duration(attr *hcl.Attribute, zeroOK bool) (time.Duration, bool) {
	s, ok := d.string(attr)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(attr.Expr.Range(), "Invalid duration",
			`%s must be a duration such as "250ms", "10s" or "1m30s", got %q.`, attr.Name, s)
		return 0, false
	case v < 0:
		d.errorf(attr.Expr.Range(), "Invalid duration", "%s must not be negative, got %q.", attr.Name, s)
		return 0, false
	case v == 0 && !zeroOK:
		d.errorf(attr.Expr.Range(), "Invalid duration", "%s must be longer than zero; remove it to keep the default.", attr.Name)
		return 0, false
	}
	return v, true
}

// durationWithin is duration, and then refuses a duration outside [lo, hi]
// (zero stays allowed when zeroOK, whatever lo is; hi math.MaxInt64 is no
// upper bound).
func (d *decoder) durationWithin(attr *hcl.Attribute, zeroOK bool, lo, hi time.Duration) (time.Duration, bool) {
	v, ok := d.duration(attr, zeroOK)
	if !ok || (v == 0 && zeroOK) {
		return v, ok
	}
	switch {
	case v < lo && hi == math.MaxInt64:
		d.errorf(attr.Expr.Range(), "Invalid duration", "%s must be at least %v, got %v.", attr.Name, lo, v)
		return 0, false
	case v < lo || v > hi:
		d.errorf(attr.Expr.Range(), "Invalid duration", "%s must be from %v to %v, got %v.", attr.Name, lo, hi, v)
		return 0, false
	}
	return v, true
}

// stringMax is string, and then refuses a string longer than max bytes.
func (d *decoder) stringMax(attr *hcl.Attribute, max int) (string, bool) {
	s, ok := d.string(attr)
	if ok && len(s) > max {
		d.errorf(attr.Expr.Range(), "Invalid value", "%s must be at most %d bytes long, got %d.", attr.Name, max, len(s))
		return "", false
	}
	return s, ok
}

// size decodes a byte size in [lo, hi]: a number of bytes, or a string such
// as "64MiB".
func (d *decoder) size(attr *hcl.Attribute, lo, hi uint64) (uint64, bool) {
	v, ok := d.value(attr)
	if !ok {
		return 0, false
	}
	var (
		n   uint64
		err error
	)
	switch v.Type() {
	case cty.Number:
		f := v.AsBigFloat()
		u, acc := f.Uint64()
		if acc != big.Exact {
			err = fmt.Errorf("%s is not a whole, non-negative number of bytes", f.Text('g', -1))
		}
		n = u
	case cty.String:
		n, err = parseSize(v.AsString())
	default:
		err = fmt.Errorf("got a %s", v.Type().FriendlyName())
	}
	if err != nil {
		d.errorf(attr.Expr.Range(), "Invalid size",
			`%s must be a number of bytes or a size such as "512KiB" or "64MiB": %s.`, attr.Name, err)
		return 0, false
	}
	if n < lo || n > hi {
		d.errorf(attr.Expr.Range(), "Invalid size", "%s must be from %s to %s, got %s.",
			attr.Name, formatSize(lo), formatSize(hi), formatSize(n))
		return 0, false
	}
	return n, true
}

// json evaluates any value and encodes it as JSON.
func (d *decoder) json(attr *hcl.Attribute) ([]byte, bool) {
	v, ok := d.value(attr)
	if !ok {
		return nil, false
	}
	b, err := ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
	if err != nil {
		d.errorf(attr.Expr.Range(), "Invalid config", "%s cannot be encoded as JSON: %s.", attr.Name, err)
		return nil, false
	}
	return b, true
}

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	// Longest suffixes first, so that "KiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

// parseSize parses a byte size: a whole number followed by an optional unit,
// B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024). Spaces
// between number and unit are allowed; units are case-sensitive.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (a whole number, then B, KB, KiB, MB, MiB, GB or GiB)", s)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// formatSize formats n bytes with the largest binary unit that divides it.
func formatSize(n uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatUint(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// ParseSize parses a byte size as the configuration file writes one
// (a whole number, then B, KB, KiB, MB, MiB, GB or GiB), for command-line
// flags that take sizes.
func ParseSize(s string) (uint64, error) { return parseSize(s) }
