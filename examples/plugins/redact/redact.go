package main

import (
	"errors"
	"fmt"
	"sort"

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
	fields      []jsonscan.Path
	replacement []byte        // the replacement as a JSON string literal
	require     jsonscan.Path // nil: drop nothing
	dropped     uint64

	// Reused from record to record.
	ranges [][2]int // byte ranges of the values to mask
	found  bool     // whether the walk met the required path
	buf    []byte   // the new value; the host copies it before the next call
}

// newRedactor validates cfg.
func newRedactor(cfg config) (*redactor, error) {
	if len(cfg.Fields) == 0 && cfg.DropIfMissing == "" {
		return nil, errors.New(`redact: nothing to do: set "fields" or "drop_if_missing"`)
	}
	r := &redactor{replacement: jsonscan.AppendString(nil, cfg.Replacement)}
	for _, f := range cfg.Fields {
		p, err := jsonscan.ParsePath(f)
		if err != nil {
			return nil, fmt.Errorf("redact: fields: %w", err)
		}
		r.fields = append(r.fields, p)
	}
	if cfg.DropIfMissing != "" {
		p, err := jsonscan.ParsePath(cfg.DropIfMissing)
		if err != nil {
			return nil, fmt.Errorf("redact: drop_if_missing: %w", err)
		}
		r.require = p
	}
	return r, nil
}

// visit records what the walk of a value meets.
func (r *redactor) visit(v *jsonscan.Value) {
	if r.require != nil && !r.found && r.require.Match(v.Path) {
		r.found = true
	}
	for _, f := range r.fields {
		if f.Match(v.Path) {
			r.ranges = append(r.ranges, [2]int{v.Start, v.End})
			return
		}
	}
}

// OnSend masks the configured fields of the record's value, or drops it.
func (r *redactor) OnSend(rec *kpipe.Record) (kpipe.Action, error) {
	if !mayBeJSONDocument(rec.Value) {
		return kpipe.Unchanged, nil
	}
	r.ranges, r.found = r.ranges[:0], false
	if err := jsonscan.Walk(rec.Value, r.visit); err != nil {
		return kpipe.Unchanged, nil // not JSON: not ours to judge
	}
	if r.require != nil && !r.found {
		r.dropped++
		if kpipe.LogEnabled(kpipe.LevelDebug) {
			kpipe.Log(kpipe.LevelDebug, fmt.Sprintf("dropping a record to %s without %s (%d dropped by this instance)", rec.Topic, r.require, r.dropped))
		}
		return kpipe.Drop, nil
	}
	if len(r.ranges) == 0 {
		return kpipe.Unchanged, nil
	}
	rec.Value = r.splice(rec.Value)
	return kpipe.Changed, nil
}

// splice returns value with every recorded range replaced, reusing r.buf. A
// range inside another (a field within a masked field) is covered by the
// outer one.
func (r *redactor) splice(value []byte) []byte {
	sort.Slice(r.ranges, func(i, j int) bool {
		a, b := r.ranges[i], r.ranges[j]
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] > b[1]
	})
	out := r.buf[:0]
	done := 0
	for _, rg := range r.ranges {
		if rg[0] < done {
			continue // inside the previous range
		}
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
