package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSource(t *testing.T) {
	src := `
kafka { brokers = ["sink:9092"] }
pipeline "p" {
  topic = "out"
  source "kafka" {
    brokers           = ["src:9092"]
    topics            = ["a", "b"]
    group             = "g"
    start             = "latest"
    session_timeout   = "6s"
    rebalance_timeout = "20s"
    max_poll_records  = 500
    dead_letter { topic = "dead" }
  }
}
pipeline "eos" {
  topic = "out2"
  source "kafka" {
    topic_regex      = "^in-"
    group            = "g2"
    delivery         = "exactly_once"
    transactional_id = "tx-${env("KPIPE_TEST_SET", "x")}"
  }
}
`
	cfg, diags := Parse([]byte(src), filepath.Join(t.TempDir(), "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := cfg.Pipelines[0].Source
	want := Source{Brokers: []string{"src:9092"}, Topics: []string{"a", "b"}, Group: "g", Start: StartLatest,
		Delivery: AtLeastOnce, SessionTimeout: 6 * time.Second, RebalanceTimeout: 20 * time.Second,
		MaxPollRecords: 500, DeadLetterTopic: "dead"}
	want.DefRange = s.DefRange
	if strings.Join(s.Brokers, ",") != "src:9092" || strings.Join(s.Topics, ",") != "a,b" || s.Group != want.Group ||
		s.Start != want.Start || s.Delivery != want.Delivery || s.SessionTimeout != want.SessionTimeout ||
		s.RebalanceTimeout != want.RebalanceTimeout || s.MaxPollRecords != 500 || s.DeadLetterTopic != "dead" {
		t.Errorf("source = %+v, want %+v", *s, want)
	}
	e := cfg.Pipelines[1].Source
	if e.TopicRegex != "^in-" || e.Delivery != ExactlyOnce || e.TransactionalID != "tx-x" || e.Start != StartEarliest || e.Brokers != nil {
		t.Errorf("eos source = %+v", *e)
	}
}

func TestParseSourceErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "values",
			src: `pipeline "p" {
  topic = "out"
  source "kafka" {
    brokers           = ["nope:x"]
    topics            = ["a", ""]
    group             = ""
    start             = "middle"
    delivery          = "twice"
    session_timeout   = "-1s"
    max_poll_records  = 0
  }
}
`,
			want: []string{
				"4:25: error: Invalid broker address",
				"5:25: error: Invalid topics",
				"6:25: error: Invalid group",
				"7:25: error: Invalid start",
				"8:25: error: Invalid delivery",
				"9:25: error: Invalid duration",
				"10:25: error: Invalid value",
			},
		},
		{
			name: "group timeouts",
			src: `pipeline "p" {
  topic = "out"
  source "kafka" {
    topics            = ["a"]
    group             = "g"
    session_timeout   = "50ms"
    rebalance_timeout = "999999h"
  }
}
`,
			want: []string{
				"6:25: error: Invalid duration: session_timeout must be from 100ms to 596h31m23.647s, got 50ms.",
				"7:25: error: Invalid duration: rebalance_timeout must be from 100ms to 596h31m23.647s, got 999999h0m0s.",
			},
		},
		{
			name: "shape",
			src: `pipeline "p" {
  source "file" {}
}
pipeline "q" {
  source "kafka" {
    group = "g"
  }
}
pipeline "r" {
  topic = "out"
  source "kafka" {
    topics      = ["a"]
    topic_regex = "b"
  }
}
`,
			want: []string{
				`2:10: error: Invalid source type`,
				`5:3: error: Missing topics`,
				`5:3: error: Missing topic`,
				`11:18: error: Missing required argument`,
				`13:5: error: Conflicting topics`,
			},
		},
		{
			name: "rules",
			src: `kafka {
  brokers          = ["k:9092"]
  acks             = "1"
  transactional_id = "t"
}
pipeline "loop" {
  topic = "a"
  source "kafka" {
    topics = ["a"]
    group  = "g"
    transactional_id = "x"
    dead_letter { topic = "a" }
  }
}
pipeline "eos" {
  topic = "out"
  source "kafka" {
    brokers     = ["other:9092"]
    topic_regex = "[o"
    group       = "g"
    delivery    = "exactly_once"
  }
}
pipeline "regex" {
  topic = "in-out"
  source "kafka" {
    topic_regex = "^in-"
    group       = "g"
  }
}
`,
			want: []string{
				`3:3: error: Transactions need acks = "all"`,
				`3:22: error: exactly_once needs acks = "all"`,
				`4:22: error: transactional_id with a kafka source`,
				`9:14: error: Pipeline reads its own output`,
				`11:24: error: transactional_id needs exactly_once`,
				`12:27: error: Invalid dead_letter topic`,
				`18:19: error: exactly_once needs one cluster`,
				`19:19: error: Invalid topic_regex`,
				`26:3: error: Pipeline reads its own output`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "kpipe.hcl")
			wantDiagnostics(t, file, tt.src, tt.want)
		})
	}
}
