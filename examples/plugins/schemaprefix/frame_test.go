package main

import (
	"bytes"
	"strings"
	"testing"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

func id(n int64) *int64 { return &n }

func TestNewFramerRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
		want string
	}{
		{"missing", config{}, `"schema_id" is required`},
		{"negative", config{SchemaID: id(-1)}, "schema_id -1 is not in"},
		{"too large", config{SchemaID: id(1 << 31)}, "schema_id 2147483648 is not in"},
		{"bad key id", config{SchemaID: id(1), KeySchemaID: id(-5)}, "key_schema_id -5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newFramer(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newFramer error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSerialize(t *testing.T) {
	withKey, err := newFramer(config{SchemaID: id(0x01020304), KeySchemaID: id(7)})
	if err != nil {
		t.Fatal(err)
	}
	valueOnly, err := newFramer(config{SchemaID: id(42)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		f       *framer
		target  kpipe.Target
		key     string
		value   string
		want    []byte
		wantErr string
	}{
		{"value compacted", withKey, kpipe.TargetValue, "", "{ \"a\" : [1, 2],\n \"b\": \"x y\" }\n",
			append([]byte{0, 1, 2, 3, 4}, `{"a":[1,2],"b":"x y"}`...), ""},
		{"key framed", withKey, kpipe.TargetKey, `"k1"`, "", append([]byte{0, 0, 0, 0, 7}, `"k1"`...), ""},
		{"key passed through", valueOnly, kpipe.TargetKey, "raw key", "", []byte("raw key"), ""},
		{"scalar value", valueOnly, kpipe.TargetValue, "", " 12 ", append([]byte{0, 0, 0, 0, 42}, `12`...), ""},
		{"invalid", valueOnly, kpipe.TargetValue, "", `{"a":`, nil, "value is not valid JSON"},
		{"two documents", valueOnly, kpipe.TargetValue, "", `{} {}`, nil, "value is not valid JSON"},
		{"empty", valueOnly, kpipe.TargetValue, "", ``, nil, "value is not valid JSON"},
		{"invalid key", withKey, kpipe.TargetKey, `nope`, "", nil, "key is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &kpipe.Record{Key: []byte(tt.key), Value: []byte(tt.value)}
			got, err := tt.f.Serialize(tt.target, r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Serialize error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("Serialize = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
