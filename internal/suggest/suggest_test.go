package suggest

import "testing"

func TestClosest(t *testing.T) {
	var (
		policies = []string{"skip", "fail", "drop"}
		codecs   = []string{"none", "gzip", "snappy", "lz4", "zstd"}
		acks     = []string{"0", "1", "all", "-1"}
		delivery = []string{"exactly_once", "at_least_once"}
		flags    = []string{"brokers", "topic", "input", "format", "strict", "flush-timeout", "log-level"}
	)
	for _, tt := range []struct {
		s          string
		candidates []string
		want       string
	}{
		{"skp", policies, "skip"},
		{"sikp", policies, "skip"}, // a swap is one edit
		{"SKIP", policies, "skip"},
		{"Fail", policies, "fail"},
		{"dorp", policies, "drop"},
		{"ignore", policies, ""},
		{"default", policies, ""},
		{"gz", codecs, "gzip"},
		{"zstd9", codecs, "zstd"},
		{"snapy", codecs, "snappy"},
		{"brotli", codecs, ""},
		{"lz5", codecs, "lz4"},
		{"l", codecs, ""},
		{"ALL", acks, "all"},
		{"2", acks, ""},
		{"most", acks, ""},
		{"exactly-once", delivery, "exactly_once"},
		{"exactly", delivery, "exactly_once"},
		{"at-least-once", delivery, "at_least_once"},
		{"brokr", flags, "brokers"},
		{"broker", flags, "brokers"},
		{"topics", flags, "topic"},
		{"flush-timout", flags, "flush-timeout"},
		{"loglevel", flags, "log-level"},
		{"x", flags, ""},
		{"verbose", flags, ""},
	} {
		if got := Closest(tt.s, tt.candidates); got != tt.want {
			t.Errorf("Closest(%q, %q) = %q, want %q", tt.s, tt.candidates, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "abc", 0},
		{"abc", "acb", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // optimal string alignment, not full Damerau-Levenshtein (2)
		{"héllo", "hello", 1},
	} {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestHintAndQuoted(t *testing.T) {
	if got, want := Hint("skp", []string{"skip", "fail"}, "%q"), ` Did you mean "skip"?`; got != want {
		t.Errorf("Hint = %q, want %q", got, want)
	}
	if got := Hint("zzz", []string{"skip", "fail"}, "%q"); got != "" {
		t.Errorf("Hint with nothing close = %q, want none", got)
	}
	if got, want := Hint("brokr", []string{"brokers"}, "--%s"), " Did you mean --brokers?"; got != want {
		t.Errorf("Hint = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{[]string{"a"}, `"a"`},
		{[]string{"a", "b"}, `"a" or "b"`},
		{[]string{"a", "b", "c"}, `"a", "b" or "c"`},
	} {
		if got := Quoted(tt.in); got != tt.want {
			t.Errorf("Quoted(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
