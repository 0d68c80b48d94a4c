// Package jsonpath finds and replaces fields of decoded JSON documents by
// dotted paths such as "card.number", for the example plugins.
//
// A path is a list of object member names separated by dots. When a step of
// the path meets an array, the rest of the path applies to every element, so
// "items.sku" names the sku of every element of items. Names that contain a
// dot cannot be addressed.
package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Path is a parsed dotted path.
type Path []string

// Parse parses a dotted path. Empty paths and empty steps ("a..b", ".a") are
// errors.
func Parse(s string) (Path, error) {
	if s == "" {
		return nil, errors.New("empty JSON path")
	}
	p := Path(strings.Split(s, "."))
	for _, step := range p {
		if step == "" {
			return nil, fmt.Errorf("JSON path %q has an empty step", s)
		}
	}
	return p, nil
}

// String returns the dotted form of p.
func (p Path) String() string { return strings.Join(p, ".") }

// Decode decodes a JSON document, keeping numbers as json.Number so that
// re-encoding does not change them. It fails on anything but exactly one
// JSON value.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := bytes.Trim(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("data after the JSON value at offset %d", dec.InputOffset())
	}
	return v, nil
}

// Encode appends the compact JSON encoding of v to dst, without escaping
// <, > and & (encoding/json's default for HTML safety) so that strings are
// not changed needlessly. Object members come out sorted by name.
func Encode(dst *bytes.Buffer, v any) error {
	enc := json.NewEncoder(dst)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	// Encoder.Encode ends the value with a newline.
	dst.Truncate(dst.Len() - 1)
	return nil
}

// Lookup returns the first value found at path in doc, and whether there is
// one. A member whose value is JSON null is found (and returned as nil).
func Lookup(doc any, path Path) (any, bool) {
	if len(path) == 0 {
		return doc, true
	}
	switch v := doc.(type) {
	case map[string]any:
		child, ok := v[path[0]]
		if !ok {
			return nil, false
		}
		return Lookup(child, path[1:])
	case []any:
		for _, e := range v {
			if found, ok := Lookup(e, path); ok {
				return found, true
			}
		}
	}
	return nil, false
}

// Replace sets every value found at path in doc to with, and returns how many
// it replaced.
func Replace(doc any, path Path, with any) int {
	if len(path) == 0 {
		return 0
	}
	switch v := doc.(type) {
	case map[string]any:
		child, ok := v[path[0]]
		if !ok {
			return 0
		}
		if len(path) == 1 {
			v[path[0]] = with
			return 1
		}
		return Replace(child, path[1:], with)
	case []any:
		n := 0
		for _, e := range v {
			n += Replace(e, path, with)
		}
		return n
	}
	return 0
}
