package main

import (
	"errors"
	"fmt"

	"github.com/kpipe/kpipe/examples/plugins/internal/jsonscan"
	kpipe "github.com/kpipe/kpipe/sdk/go"
)

// config is the plugin's JSON configuration.
type config struct {
	Fields        []string `json:"fields"`
	Replacement   string   `json:"replacement"`
	DropIfMissing string   `json:"drop_if_missing"`
}

// redactor masks fields of JSON values.
type redactor struct {
	// matcher finds the fields, ids 0 to nfields-1, and the required path,
	// id nfields, in one pass that does not allocate.
	matcher     *jsonscan.Matcher
	nfields     int
	replacement []byte        // the replacement as a JSON string literal
	require     jsonscan.Path // nil: drop nothing
	dropped     uint64
	visit       func(id, start, end int) // r.visitValue, bound once

	// Reused from record to record.
	ranges [][2]int // byte ranges of the values to mask, sorted, disjoint
	found  bool     // whether the walk met the required path
	buf    []byte   // the new value; the host copies it before the next call
}

// newRedactor validates cfg.
func newRedactor(cfg config) (*redactor, error) {
	if len(cfg.Fields) == 0 && cfg.DropIfMissing == "" {
		return nil, errors.New(`redact: nothing to do: set "fields" or "drop_if_missing"`)
	}
	r := &redactor{replacement: jsonscan.AppendString(nil, cfg.Replacement), nfields: len(cfg.Fields)}
	var paths []jsonscan.Path
	for _, f := range cfg.Fields {
		p, err := jsonscan.ParsePath(f)
		if err != nil {
			return nil, fmt.Errorf("redact: fields: %w", err)
		}
		paths = append(paths, p)
	}
	if cfg.DropIfMissing != "" {
		p, err := jsonscan.ParsePath(cfg.DropIfMissing)
		if err != nil {
			return nil, fmt.Errorf("redact: drop_if_missing: %w", err)
		}
		r.require = p
		paths = append(paths, p)
	}
	r.matcher = jsonscan.NewMatcher(paths...)
	r.visit = r.visitValue
	return r, nil
}

// visitValue records a value the matcher reports. Values come after the
// values inside them and before the values after them, so the ranges inside
// a new range are the last ones recorded: dropping them keeps r.ranges
// sorted and disjoint, a field within a masked field covered by the outer one.
func (r *redactor) visitValue(id, start, end int) {
	if id == r.nfields {
		r.found = true
		return
	}
	n := len(r.ranges)
	for n > 0 && r.ranges[n-1][0] >= start {
		n--
	}
	r.ranges = append(r.ranges[:n], [2]int{start, end})
}

// OnSendView masks the configured fields of the record's value, or drops it.
// It reads and changes only the value, so it takes a RecordView: the SDK
// decodes nothing else and hands the host the new value alone (redact's
// on_send in kpipe run --plugin-times, against the Record it took before).
func (r *redactor) OnSendView(v *kpipe.RecordView) (kpipe.Action, error) {
	action, value := r.redact(v.Value())
	switch action {
	case kpipe.Drop:
		r.dropped++
		if kpipe.LogEnabled(kpipe.LevelDebug) {
			kpipe.Log(kpipe.LevelDebug, fmt.Sprintf("dropping a record to %s without %s (%d dropped by this instance)", v.Topic(), r.require, r.dropped))
		}
	case kpipe.Changed:
		v.SetValue(value)
	}
	return action, nil
}

// redact returns what becomes of a record with value: Unchanged, Drop, or
// Changed and its new value, which is r.buf until the next call.
func (r *redactor) redact(value []byte) (kpipe.Action, []byte) {
	if !mayBeJSONDocument(value) {
		return kpipe.Unchanged, nil
	}
	r.ranges, r.found = r.ranges[:0], false
	if err := r.matcher.Walk(value, r.visit); err != nil {
		return kpipe.Unchanged, nil // not JSON: not ours to judge
	}
	if r.require != nil && !r.found {
		return kpipe.Drop, nil
	}
	if len(r.ranges) == 0 {
		return kpipe.Unchanged, nil
	}
	return kpipe.Changed, r.splice(value)
}

// splice returns value with every recorded range replaced, reusing r.buf.
func (r *redactor) splice(value []byte) []byte {
	out := r.buf[:0]
	done := 0
	for _, rg := range r.ranges {
		out = append(out, value[done:rg[0]]...)
		out = append(out, r.replacement...)
		done = rg[1]
	}
	out = append(out, value[done:]...)
	r.buf = out
	return out
}

// mayBeJSONDocument reports whether v starts, after white space, like a JSON
// object or array: a cheap test that skips plain text and binary values.
func mayBeJSONDocument(v []byte) bool {
	for _, c := range v {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}
