package kpipe

import (
	"reflect"
	"testing"
	"time"
)

func TestHeaderHelpers(t *testing.T) {
	hs := func(kv ...string) []Header {
		var out []Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	tests := []struct {
		name string
		in   []Header
		op   func(r *Record) bool
		want []Header
		ret  bool
	}{
		{"set appends", hs("a", "1"), func(r *Record) bool { r.SetHeader("b", []byte("2")); return true }, hs("a", "1", "b", "2"), true},
		{"set replaces first, removes rest", hs("a", "1", "b", "x", "a", "3"), func(r *Record) bool { r.SetHeader("a", []byte("9")); return true }, hs("a", "9", "b", "x"), true},
		{"remove all", hs("a", "1", "b", "2", "a", "3"), func(r *Record) bool { return r.RemoveHeader("a") }, hs("b", "2"), true},
		{"remove none", hs("a", "1"), func(r *Record) bool { return r.RemoveHeader("z") }, hs("a", "1"), false},
		{"add keeps duplicates", hs("a", "1"), func(r *Record) bool { r.AddHeader("a", []byte("2")); return true }, hs("a", "1", "a", "2"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Record{Headers: tt.in}
			if ret := tt.op(r); ret != tt.ret {
				t.Fatalf("returned %v, want %v", ret, tt.ret)
			}
			if !reflect.DeepEqual(r.Headers, tt.want) {
				t.Fatalf("headers = %q, want %q", r.Headers, tt.want)
			}
		})
	}
	r := &Record{Headers: hs("a", "1", "a", "2")}
	if v, ok := r.HeaderValue("a"); !ok || string(v) != "1" {
		t.Fatalf("HeaderValue(a) = %q, %v", v, ok)
	}
	if _, ok := r.HeaderValue("b"); ok {
		t.Fatal("HeaderValue(b) found a header")
	}
}

func TestRecordTime(t *testing.T) {
	var r Record
	if !r.Time().IsZero() {
		t.Fatal("Time of a record without timestamp is not zero")
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	r.SetTime(ts)
	if !r.HasTimestamp || r.Timestamp != ts.UnixMilli() || !r.Time().Equal(ts.Truncate(time.Millisecond)) {
		t.Fatalf("SetTime: %+v", r)
	}
	r.SetTime(time.Time{})
	if r.HasTimestamp || r.Timestamp != 0 {
		t.Fatalf("SetTime(zero) did not clear: %+v", r)
	}
	r.SetPartition(3)
	r.ClearPartition()
	if r.HasPartition || r.Partition != 0 {
		t.Fatalf("ClearPartition: %+v", r)
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		TargetKey.String(): "key", TargetValue.String(): "value", Target(5).String(): "target(5)",
		Unchanged.String(): "unchanged", Changed.String(): "changed", Drop.String(): "drop", Action(7).String(): "action(7)",
		LevelTrace.String(): "trace", LevelError.String(): "error", Level(0).String(): "level(0)",
	} {
		if got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestLevelClamp(t *testing.T) {
	for l, want := range map[Level]Level{-3: LevelTrace, 0: LevelTrace, LevelTrace: LevelTrace, LevelWarn: LevelWarn, LevelError: LevelError, 6: LevelError, 100: LevelError} {
		if got := l.clamp(); got != want {
			t.Errorf("Level(%d).clamp() = %v, want %v", l, got, want)
		}
	}
}
