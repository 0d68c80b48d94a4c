package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/kpipe/kpipe/examples/plugins/internal/jsonpath"
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
	fields      []jsonpath.Path
	replacement string
	require     jsonpath.Path // nil: drop nothing
	buf         bytes.Buffer  // the new value; reused, the host copies it before the next call
	dropped     uint64
}

// newRedactor validates cfg.
func newRedactor(cfg config) (*redactor, error) {
	if len(cfg.Fields) == 0 && cfg.DropIfMissing == "" {
		return nil, errors.New(`redact: nothing to do: set "fields" or "drop_if_missing"`)
	}
	r := &redactor{replacement: cfg.Replacement}
	for _, f := range cfg.Fields {
		p, err := jsonpath.Parse(f)
		if err != nil {
			return nil, fmt.Errorf("redact: fields: %w", err)
		}
		r.fields = append(r.fields, p)
	}
	if cfg.DropIfMissing != "" {
		p, err := jsonpath.Parse(cfg.DropIfMissing)
		if err != nil {
			return nil, fmt.Errorf("redact: drop_if_missing: %w", err)
		}
		r.require = p
	}
	return r, nil
}

// OnSend masks the configured fields of the record's value, or drops it.
func (r *redactor) OnSend(rec *kpipe.Record) (kpipe.Action, error) {
	if !mayBeJSONDocument(rec.Value) {
		return kpipe.Unchanged, nil
	}
	doc, err := jsonpath.Decode(rec.Value)
	if err != nil {
		return kpipe.Unchanged, nil // not JSON: not ours to judge
	}
	if r.require != nil {
		if _, ok := jsonpath.Lookup(doc, r.require); !ok {
			r.dropped++
			if kpipe.LogEnabled(kpipe.LevelDebug) {
				kpipe.Log(kpipe.LevelDebug, fmt.Sprintf("dropping a record to %s without %s (%d dropped by this instance)", rec.Topic, r.require, r.dropped))
			}
			return kpipe.Drop, nil
		}
	}
	n := 0
	for _, p := range r.fields {
		n += jsonpath.Replace(doc, p, r.replacement)
	}
	if n == 0 {
		return kpipe.Unchanged, nil
	}
	r.buf.Reset()
	if err := jsonpath.Encode(&r.buf, doc); err != nil {
		return kpipe.Unchanged, fmt.Errorf("redact: re-encoding the value: %w", err)
	}
	rec.Value = r.buf.Bytes()
	return kpipe.Changed, nil
}

// OnAck does nothing: redact has no use for acknowledgements.
func (r *redactor) OnAck(*kpipe.Record, kpipe.Ack) error { return nil }

// mayBeJSONDocument reports whether v starts, after white space, like a JSON
// object or array: a cheap test that skips decoding plain text and binary
// values.
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
