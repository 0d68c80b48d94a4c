package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

func TestNewStamperRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
		want string
	}{
		{"nothing", config{}, "nothing to do"},
		{"empty name", config{Headers: map[string]string{"": "x"}}, "empty"},
		{"seq twice", config{Headers: map[string]string{"seq": "x"}, SequenceHeader: "seq"}, `"seq" is configured twice`},
		{"same dynamic", config{SequenceHeader: "h", TimestampHeader: "h"}, "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newStamper(tt.cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newStamper error = %v, want %q", err, tt.want)
			}
		})
	}
}

// view returns a RecordView of r.
func view(t *testing.T, r *kpipe.Record) *kpipe.RecordView {
	t.Helper()
	v, err := kpipe.NewRecordView(r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func headers(r *kpipe.RecordView) []string {
	var out []string
	for _, h := range r.Headers() {
		out = append(out, h.Key+"="+string(h.Value))
	}
	return out
}

func TestOnSend(t *testing.T) {
	s, err := newStamper(config{
		Headers:         map[string]string{"source": "kpipe", "env": "test"},
		SequenceHeader:  "seq",
		TimestampHeader: "ts",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.UnixMilli(1700000000123) }
	r := view(t, &kpipe.Record{Headers: []kpipe.Header{{Key: "keep", Value: []byte("1")}, {Key: "source", Value: []byte("old")}}})
	if a, err := s.OnSendView(r); a != kpipe.Changed || err != nil {
		t.Fatalf("OnSendView = %v, %v", a, err)
	}
	want := []string{"keep=1", "source=kpipe", "env=test", "seq=1", "ts=1700000000123"}
	if got := headers(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("headers = %q, want %q", got, want)
	}
	r2 := view(t, &kpipe.Record{})
	s.OnSendView(r2)
	if v, _ := r2.Header("seq"); string(v) != "2" {
		t.Fatalf("second sequence number = %q, want 2", v)
	}
}

func TestOnAckCounts(t *testing.T) {
	var logs []string
	s, err := newStamper(config{Headers: map[string]string{"a": "b"}, LogEvery: 3}, func(l kpipe.Level, m string) {
		logs = append(logs, l.String()+": "+m)
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &kpipe.Record{Topic: "t"}
	for _, ack := range []kpipe.Ack{{Offset: 1}, {Offset: -1, Error: "broker down"}, {Offset: 2}, {Offset: 3}} {
		if err := s.OnAck(r, ack); err != nil {
			t.Fatal(err)
		}
	}
	if s.delivered != 3 || s.failed != 1 {
		t.Fatalf("counted %d delivered, %d failed; want 3, 1", s.delivered, s.failed)
	}
	want := []string{"info: acks in this instance: 2 delivered, 1 failed"}
	if !reflect.DeepEqual(logs, want) {
		t.Fatalf("logs = %q, want %q", logs, want)
	}
}
