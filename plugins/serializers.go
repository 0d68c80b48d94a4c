package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// bytesSerializer is "bytes": the data is sent as it is.
type bytesSerializer struct{}

func (bytesSerializer) Serialize(_ context.Context, t Target, r *Record) ([]byte, error) {
	return field(t, r), nil
}

// stringSerializer is "string": the data is sent as it is if it is valid
// UTF-8, and rejected otherwise.
type stringSerializer struct{}

func (stringSerializer) Serialize(_ context.Context, t Target, r *Record) ([]byte, error) {
	b := field(t, r)
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("serializer \"string\": record %s is not valid UTF-8", t)
	}
	return b, nil
}

// jsonSerializer is "json": the data must be one JSON value; it is sent
// compacted (insignificant white space removed).
type jsonSerializer struct{}

func (jsonSerializer) Serialize(_ context.Context, t Target, r *Record) ([]byte, error) {
	b := field(t, r)
	// Compact validates as it goes. The result is never longer than the
	// input, so one allocation is enough.
	out := bytes.NewBuffer(make([]byte, 0, len(b)))
	if err := json.Compact(out, b); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("serializer \"json\": record %s is not valid JSON: %v at byte %d", t, se, se.Offset)
		}
		return nil, fmt.Errorf("serializer \"json\": record %s is not valid JSON: %w", t, err)
	}
	return out.Bytes(), nil
}

func field(t Target, r *Record) []byte {
	if t == TargetKey {
		return r.Key
	}
	return r.Value
}
