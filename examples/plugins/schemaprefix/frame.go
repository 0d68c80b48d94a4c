package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/kpipe/kpipe/examples/plugins/internal/jsonscan"
	kpipe "github.com/kpipe/kpipe/sdk/go"
)

// config is the plugin's JSON configuration. The ids are pointers so that a
// missing id can be told from id 0.
type config struct {
	SchemaID    *int64 `json:"schema_id"`
	KeySchemaID *int64 `json:"key_schema_id"`
}

// magic is the first byte of the Confluent wire format.
const magic = 0

// framer serializes JSON in the Confluent wire format.
type framer struct {
	valueID, keyID uint32
	hasKeyID       bool
	buf            []byte // the output; reused, the host copies it before the next call
}

// newFramer validates cfg.
func newFramer(cfg config) (*framer, error) {
	if cfg.SchemaID == nil {
		return nil, errors.New(`schemaprefix: "schema_id" is required`)
	}
	f := &framer{}
	var err error
	if f.valueID, err = schemaID("schema_id", *cfg.SchemaID); err != nil {
		return nil, err
	}
	if cfg.KeySchemaID != nil {
		if f.keyID, err = schemaID("key_schema_id", *cfg.KeySchemaID); err != nil {
			return nil, err
		}
		f.hasKeyID = true
	}
	return f, nil
}

// schemaID checks that id is a valid Schema Registry id: a non-negative
// 32-bit signed integer.
func schemaID(name string, id int64) (uint32, error) {
	if id < 0 || id > math.MaxInt32 {
		return 0, fmt.Errorf("schemaprefix: %s %d is not in [0, %d]", name, id, math.MaxInt32)
	}
	return uint32(id), nil
}

// Serialize frames the record's key or value.
func (f *framer) Serialize(target kpipe.Target, r *kpipe.Record) ([]byte, error) {
	data, id := r.Value, f.valueID
	if target == kpipe.TargetKey {
		if !f.hasKeyID {
			return r.Key, nil
		}
		data, id = r.Key, f.keyID
	}
	return f.frame(data, id, target)
}

// frame returns the wire format of the JSON document data with schema id.
func (f *framer) frame(data []byte, id uint32, target kpipe.Target) ([]byte, error) {
	out := append(f.buf[:0], magic, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(out[1:], id)
	// AppendCompact also validates: it fails on anything but one JSON value
	// surrounded by white space.
	out, err := jsonscan.AppendCompact(out, data)
	if err != nil {
		return nil, fmt.Errorf("schemaprefix: %v is not valid JSON: %w", target, err)
	}
	f.buf = out
	return out, nil
}
