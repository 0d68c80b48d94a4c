package main

import (
	"strings"
	"testing"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

func TestNewRouterRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
		want string
	}{
		{"nothing", config{}, "nothing to do"},
		{"routes without field", config{Routes: map[string]int32{"a": 1}}, `"routes" needs "field"`},
		{"field without routes", config{Field: "a"}, `"field" needs "routes"`},
		{"negative route", config{Field: "a", Routes: map[string]int32{"x": -1}}, "negative partition"},
		{"negative prefix", config{KeyPrefixRoutes: map[string]int32{"x": -2}}, "negative partition"},
		{"empty prefix", config{KeyPrefixRoutes: map[string]int32{"": 1}}, "empty prefix"},
		{"bad path", config{Field: "a.", Routes: map[string]int32{"x": 1}}, "empty step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newRouter(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newRouter error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPartition(t *testing.T) {
	r, err := newRouter(config{
		Field:           "geo.region",
		Routes:          map[string]int32{"eu": 0, "us": 1, "3": 3, "far": 9},
		KeyPrefixRoutes: map[string]int32{"a-": 4, "a-b-": 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     string
		nullKey bool
		value   string
		want    int32
		wantErr string
	}{
		{"field eu", "", false, `{"geo":{"region":"eu"}}`, 0, ""},
		{"field us beats prefix", "a-1", false, `{"geo":{"region":"us"}}`, 1, ""},
		{"number field", "", false, `{"geo":{"region":3}}`, 3, ""},
		{"unknown field value, prefix", "a-1", false, `{"geo":{"region":"mars"}}`, 4, ""},
		{"longest prefix", "a-b-c", false, `not json`, 5, ""},
		{"no match", "zzz", false, `{"geo":{}}`, kpipe.DefaultPartition, ""},
		{"null key, no field", "", true, `{}`, kpipe.DefaultPartition, ""},
		{"bool field", "", true, `{"geo":{"region":true}}`, kpipe.DefaultPartition, ""},
		{"behind a Confluent header", "", false, "\x00\x00\x00\x00\x2a" + `{"geo":{"region":"us"}}`, 1, ""},
		{"short zero value", "", true, "\x00\x01", kpipe.DefaultPartition, ""},
		{"route beyond topic", "", false, `{"geo":{"region":"far"}}`, 0, `field value "far" maps to partition 9, but the topic has 6 partitions`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &kpipe.Record{Key: []byte(tt.key), Value: []byte(tt.value)}
			if tt.nullKey {
				rec.Key = nil
			}
			got, err := r.Partition(rec, 6)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Partition error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Partition = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}
