package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// writeModule creates an (empty) file standing for a module; Parse checks
// only that module files exist.
func writeModule(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// emptyModuleSHA256 is the SHA-256 of what writeModule writes.
const emptyModuleSHA256 = "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "plugins/stamp.wasm")
	writeModule(t, dir, "plugins/route.wasm")
	t.Setenv("KPIPE_TEST_BROKERS_LIST", "a:9092, b:9092")
	t.Setenv("KPIPE_TEST_ORIGIN", "host-1")
	src := `
kafka {
  brokers              = env("KPIPE_TEST_BROKERS_LIST")
  client_id            = "kp-${env.KPIPE_TEST_ORIGIN}-${env("KPIPE_TEST_UNSET_VAR", "x")}"
  acks                 = "all"
  idempotence          = true
  transactional_id     = "tx-1"
  linger               = "5ms"
  batch_max_bytes      = "1MiB"
  max_request_size     = 2097152
  max_buffered_records = 1000
  max_buffered_bytes   = "64MB"
  compression          = "zstd"
  request_timeout      = "30s"
  delivery_timeout     = "2m"
  retries              = 0
  max_in_flight        = 5
  partitioner_ignore_keys = true
  metadata_max_age     = "30s"
  max_block            = "5s"
}

pipeline "orders" {
  topic = "orders"

  interceptor "stamp" {
    module       = "plugins/stamp.wasm"
    config       = { origin = env.KPIPE_TEST_ORIGIN, n = 3, tags = ["a", "b"], missing = env("KPIPE_TEST_UNSET_VAR", "dflt") }
    memory_limit = "16MiB"
    timeout      = "200ms"
    load_timeout = "3s"
    pool_size    = 4
    max_output   = "1MiB"
  }
  circuit_breaker {
    threshold = 5
    cooldown  = "10s"
  }
  batch {
    max_records = 128
    linger      = "2ms"
  }
  interceptor "second" {
    module = "plugins/stamp.wasm"
  }
  interceptor "third" {
    module  = "plugins/stamp.wasm"
    timeout = "0s"
  }
  key_serializer   { builtin = "string" }
  value_serializer { builtin = "json" }
  partitioner      { module = "plugins/route.wasm" }
}

pipeline "plain" {}
`
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "kpipe.hcl"))
	if diags.HasErrors() {
		t.Fatalf("Parse: %s", diags)
	}
	k := cfg.Kafka
	linger := 5 * time.Millisecond
	retries := 0
	if got, want := strings.Join(k.Brokers, "|"), "a:9092|b:9092"; got != want {
		t.Errorf("brokers = %q, want %q", got, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"client_id", k.ClientID, "kp-host-1-x"},
		{"acks", k.Acks, "all"},
		{"idempotence", *k.Idempotence, true},
		{"transactional_id", k.TransactionalID, "tx-1"},
		{"linger", *k.Linger, linger},
		{"batch_max_bytes", k.BatchMaxBytes, int32(1 << 20)},
		{"max_request_size", k.MaxRequestSize, int32(2097152)},
		{"max_buffered_records", k.MaxBufferedRecords, 1000},
		{"max_buffered_bytes", *k.MaxBufferedBytes, int64(64e6)},
		{"max_in_flight", k.MaxInFlight, 5},
		{"partitioner_ignore_keys", k.PartitionerIgnoreKeys, true},
		{"metadata_max_age", k.MetadataMaxAge, 30 * time.Second},
		{"max_block", *k.MaxBlock, 5 * time.Second},
		{"compression", k.Compression, "zstd"},
		{"request_timeout", k.RequestTimeout, 30 * time.Second},
		{"delivery_timeout", k.DeliveryTimeout, 2 * time.Minute},
		{"retries", *k.Retries, retries},
		{"pipelines", len(cfg.Pipelines), 2},
	}
	p := cfg.Pipelines[0]
	st := p.Interceptors[0]
	checks = append(checks, []struct {
		name      string
		got, want any
	}{
		{"pipeline name", p.Name, "orders"},
		{"topic", p.Topic, "orders"},
		{"interceptors", len(p.Interceptors), 3},
		{"third timeout", *p.Interceptors[2].Timeout, time.Duration(0)},
		{"stamp name", st.Name, "stamp"},
		{"stamp kind", st.Kind, plugins.KindInterceptor},
		{"stamp module", st.Module, filepath.Join(dir, "plugins", "stamp.wasm")},
		{"stamp config", string(st.Config), `{"missing":"dflt","n":3,"origin":"host-1","tags":["a","b"]}`},
		{"stamp memory", st.MemoryLimit, uint64(16 << 20)},
		{"stamp pages", st.MemoryLimitPages(), uint32(256)},
		{"stamp timeout", *st.Timeout, 200 * time.Millisecond},
		{"second timeout", p.Interceptors[1].Timeout, (*time.Duration)(nil)},
		{"stamp load_timeout", *st.LoadTimeout, 3 * time.Second},
		{"second load_timeout", p.Interceptors[1].LoadTimeout, (*time.Duration)(nil)},
		{"stamp pool", st.PoolSize, 4},
		{"stamp max_output", st.MaxOutput, 1 << 20},
		{"breaker", *p.CircuitBreaker, CircuitBreaker{Threshold: 5, Cooldown: 10 * time.Second}},
		{"plain breaker", cfg.Pipelines[1].CircuitBreaker == nil, true},
		{"batch records", p.Batch.MaxRecords, 128},
		{"batch linger", *p.Batch.Linger, 2 * time.Millisecond},
		{"plain batch", cfg.Pipelines[1].Batch == nil, true},
		{"second config", p.Interceptors[1].Config == nil, true},
		{"key serializer", p.KeySerializer.Builtin + "/" + p.KeySerializer.Name, "string/string"},
		{"value serializer", p.ValueSerializer.Builtin, "json"},
		{"value serializer kind", p.ValueSerializer.Kind, plugins.KindSerializer},
		{"partitioner name", p.Partitioner.Name, "route"},
		{"partitioner kind", p.Partitioner.Kind, plugins.KindPartitioner},
		{"stamp sha256", st.ModuleSHA256, emptyModuleSHA256},
		{"stamp pin", st.PinnedSHA256, ""},
		{"serializer sha256", p.ValueSerializer.ModuleSHA256, ""},
		{"plain topic", cfg.Pipelines[1].Topic, ""},
		{"plain partitioner", cfg.Pipelines[1].Partitioner == nil, true},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	if got, err := cfg.Pipeline("plain"); err != nil || got != cfg.Pipelines[1] {
		t.Errorf(`Pipeline("plain") = %v, %v`, got, err)
	}
	if _, err := cfg.Pipeline(""); err == nil {
		t.Error(`Pipeline("") with two pipelines succeeded`)
	}
	if _, err := cfg.Pipeline("nope"); err == nil {
		t.Error(`Pipeline("nope") succeeded`)
	}
}

// TestParseErrors checks that every class of mistake is reported at the
// right place. Each case lists every expected "LINE:COL: error: SUMMARY"
// prefix, in order: Parse must report all of them at once.
func TestParseErrors(t *testing.T) {
	t.Setenv("KPIPE_TEST_SET", "x")
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "syntax",
			src:  "pipeline \"p\" {\n  topic = \n}\n",
			want: []string{"2:11: error: Invalid expression"},
		},
		{
			name: "unknown fields",
			src: `kafka {
  brokers = ["x:1"]
  bogus   = 1
}
pipeline "p" {
  topik = "t"
  interceptor "i" {
    builtin = "json"
    colour  = "red"
  }
  filter {}
}
`,
			want: []string{
				"3:3: error: Unsupported argument",
				"6:3: error: Unsupported argument",
				"8:15: error: Invalid builtin",
				"9:5: error: Unsupported argument",
				"11:3: error: Unsupported block type",
			},
		},
		{
			name: "wrong types",
			src: `kafka {
  brokers     = 42
  idempotence = "sometimes"
  retries     = "many"
  client_id   = ["a"]
}
pipeline "p" {
  topic = { a = 1 }
}
`,
			want: []string{
				"2:17: error: Incorrect attribute value type",
				"3:17: error: Incorrect attribute value type",
				"4:17: error: Incorrect attribute value type",
				"5:17: error: Incorrect attribute value type",
				"8:11: error: Incorrect attribute value type",
			},
		},
		{
			name: "missing module",
			src: `pipeline "p" {
  interceptor "a" {
    module = "does/not/exist.wasm"
  }
  partitioner {
    module = ""
  }
}
`,
			want: []string{
				"3:14: error: Module not found",
				"6:14: error: Invalid module",
			},
		},
		{
			name: "bad durations and sizes",
			src: `kafka {
  linger          = "5 parsecs"
  request_timeout = "-1s"
  delivery_timeout = "0s"
  batch_max_bytes = "1 furlong"
  max_request_size = "4GiB"
}
pipeline "p" {
  interceptor "a" {
    module       = "m.wasm"
    memory_limit = "100KiB"
    max_output   = 0
    timeout      = "-5s"
    pool_size    = 0
  }
  circuit_breaker {
    threshold = 1.5
    cooldown  = "0s"
  }
}
`,
			want: []string{
				"2:21: error: Invalid duration",
				"3:21: error: Invalid duration",
				"4:22: error: Invalid duration",
				"5:21: error: Invalid size",
				"6:22: error: Invalid size",
				"11:20: error: Invalid memory_limit",
				"12:20: error: Invalid size",
				"13:20: error: Invalid duration",
				"14:20: error: Invalid value",
				"17:17: error: Invalid value",
				"18:17: error: Invalid cooldown: cooldown must be longer than zero.",
			},
		},
		{
			name: "producer settings",
			src: `kafka {
  max_in_flight           = 1
  metadata_max_age        = "1ms"
  max_block               = "-1s"
  max_buffered_bytes      = "1KiB"
  partitioner_ignore_keys = "maybe"
}
pipeline "p" {}
`,
			want: []string{
				"2:29: error: max_in_flight needs idempotence = false",
				"3:29: error: Invalid duration: metadata_max_age must be from 10ms to 1h0m0s, got 1ms.",
				"4:29: error: Invalid duration",
				"5:29: error: max_buffered_bytes below batch_max_bytes",
				"6:29: error: Incorrect attribute value type",
			},
		},
		{
			name: "idempotence with acks 1",
			src: `kafka {
  acks        = 1
  idempotence = true
}
pipeline "p" {}
`,
			want: []string{`3:3: error: Idempotence needs acks = "all"`},
		},
		{
			name: "transactions without idempotence",
			src: `kafka {
  transactional_id = "t"
  idempotence      = false
  acks             = "0"
}
pipeline "p" {}
`,
			want: []string{
				"3:3: error: Transactions need idempotence",
				`4:3: error: Transactions need acks = "all"`,
			},
		},
		{
			name: "bad enums",
			src: `kafka {
  acks        = "most"
  compression = "brotli"
}
pipeline "p" {}
`,
			want: []string{
				"2:17: error: Invalid acks",
				"3:17: error: Invalid compression",
			},
		},
		{
			name: "unknown builtins",
			src: `pipeline "p" {
  key_serializer   { builtin = "avro" }
  value_serializer {
    builtin = "json"
    config  = { pretty = true }
  }
  partitioner {
    builtin = "random"
  }
  interceptor "x" { builtin = "json" }
}
`,
			want: []string{
				"2:32: error: Invalid builtin",
				"5:5: error: Not allowed with a builtin: builtin \"json\" takes no config",
				"8:15: error: Invalid builtin",
				"10:31: error: Invalid builtin",
			},
		},
		{
			name: "plugin source",
			src: `pipeline "p" {
  partitioner {
    module  = "m.wasm"
    builtin = "default"
  }
  value_serializer {
    config = {}
  }
  key_serializer {
    builtin      = "bytes"
    memory_limit = "1MiB"
  }
}
`,
			want: []string{
				"4:5: error: Conflicting plugin source",
				"6:3: error: Missing plugin source",
				"11:5: error: Not allowed with a builtin",
			},
		},
		{
			name: "duplicates",
			src: `kafka {}
kafka {}
pipeline "p" {
  interceptor "a" { module = "m.wasm" }
  interceptor "a" { module = "m.wasm" }
  partitioner { builtin = "default" }
  partitioner { builtin = "sticky" }
}
pipeline "q" {}
pipeline "p" {}
`,
			want: []string{
				"2:1: error: Duplicate kafka block",
				"5:15: error: Duplicate interceptor name",
				"7:3: error: Duplicate partitioner block",
				"10:10: error: Duplicate pipeline name",
			},
		},
		{
			name: "environment",
			src: `kafka {
  client_id = env("KPIPE_TEST_UNSET_VAR")
  brokers   = [env.KPIPE_TEST_UNSET_VAR]
  transactional_id = env("KPIPE_TEST_SET", "a", "b")
}
pipeline "p" {}
`,
			want: []string{
				`2:20: error: Invalid function argument: Invalid value for "name" parameter: environment variable KPIPE_TEST_UNSET_VAR is not set; set it, or give a default: env("KPIPE_TEST_UNSET_VAR", "DEFAULT").`,
				// env.NAME names the variable as env("NAME") does.
				`3:19: error: Environment variable not set: environment variable KPIPE_TEST_UNSET_VAR is not set; set it, or give a default: env("KPIPE_TEST_UNSET_VAR", "DEFAULT").`,
				"4:50: error: Invalid function argument",
			},
		},
		{
			name: "environment traversals",
			src: `kafka {
  client_id = "kp-${env.KPIPE_TEST_UNSET_VAR}"
}
pipeline "p" {
  topic = env["KPIPE_TEST_UNSET_OTHER"]
  interceptor "i" {
    module = "m.wasm"
    config = { a = [env.KPIPE_TEST_SET, env.KPIPE_TEST_UNSET_THIRD] }
  }
}
`,
			want: []string{
				`2:24: error: Environment variable not set: environment variable KPIPE_TEST_UNSET_VAR is not set; set it, or give a default: env("KPIPE_TEST_UNSET_VAR", "DEFAULT").`,
				`5:14: error: Environment variable not set: environment variable KPIPE_TEST_UNSET_OTHER is not set; set it, or give a default: env("KPIPE_TEST_UNSET_OTHER", "DEFAULT").`,
				`8:44: error: Environment variable not set: environment variable KPIPE_TEST_UNSET_THIRD is not set; set it, or give a default: env("KPIPE_TEST_UNSET_THIRD", "DEFAULT").`,
			},
		},
		{
			// A list with no broker in it is a slip, not a request
			// for the embedded broker (TestBrokersNone).
			name: "empty brokers list",
			src: `kafka {
  brokers = []
}
pipeline "p" {}
`,
			want: []string{
				`2:13: error: Empty brokers: The brokers list names no broker. For kpipe's embedded broker, remove the brokers attribute, or write brokers = env("KAFKA_BROKERS", "")`,
			},
		},
		{
			name: "brokers list of empty names",
			src: `kafka {
  brokers = ["", " "]
}
pipeline "p" {}
`,
			want: []string{"2:13: error: Empty brokers"},
		},
		{
			name: "no pipeline",
			src:  "kafka {}\n",
			want: []string{"1:1: error: No pipeline"},
		},
		{
			name: "circuit breaker fields",
			src: `pipeline "p" {
  interceptor "a" {
    module = "m.wasm"
    circuit_breaker {}
  }
  circuit_breaker {
    threshold = 3
  }
  circuit_breaker {
    threshold = 0
    cooldown  = "1s"
  }
}
`,
			// An interceptor's own circuit_breaker block has the
			// same required fields as the pipeline's.
			want: []string{
				"4:21: error: Missing required argument",
				"4:21: error: Missing required argument",
				"6:19: error: Missing required argument",
				"9:3: error: Duplicate circuit_breaker block",
			},
		},
		{
			name: "batch fields",
			src: `pipeline "p" {
  batch {
    max_records = 0
    linger      = "-1ms"
    size        = 3
  }
  batch {
    max_records = 70000
  }
}
`,
			want: []string{
				"3:19: error: Invalid value",
				"4:19: error: Invalid duration",
				"5:5: error: Unsupported argument",
				"7:3: error: Duplicate batch block",
			},
		},
		{
			name: "sha256 pins",
			src: `pipeline "p" {
  interceptor "short" {
    module = "m.wasm"
    sha256 = "93a44bbb"
  }
  interceptor "wrong" {
    module = "m.wasm"
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
  }
  interceptor "right" {
    module = "m.wasm"
    sha256 = "93A44BBB96C751218E4C00D479E4C14358122A389ACCA16205B1E4D0DC5F9476"
  }
  partitioner {
    builtin = "murmur2"
    sha256  = "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
  }
}
`,
			want: []string{
				"4:14: error: Invalid sha256",
				"8:14: error: Module does not match its sha256",
				"16:5: error: Not allowed with a builtin",
			},
		},
		{
			name: "failure policies",
			src: `pipeline "p" {
  interceptor "a" {
    module     = "m.wasm"
    on_failure = "explode"
  }
  partitioner {
    module     = "m.wasm"
    on_failure = "drop"
  }
  value_serializer {
    builtin = "json"
    circuit_breaker {
      threshold = 1
      cooldown  = "1s"
    }
  }
}
`,
			want: []string{
				`4:18: error: Invalid on_failure: interceptor: on_failure must be "skip", "fail" or "drop", not "explode".`,
				`8:18: error: Invalid on_failure: partitioner: on_failure must be "default" or "fail", not "drop".`,
				"12:5: error: Not allowed in a serializer",
			},
		},
		{
			// An enumerated value that is not one of its values is an
			// error that lists them and, if one is close, suggests it.
			name: "did you mean",
			src: `kafka {
  acks        = "ALL"
  compression = "zstandard"
}
pipeline "p" {
  topic = "t"
  interceptor "a" {
    module     = "m.wasm"
    on_failure = "skp"
  }
  interceptor "b" {
    module     = "m.wasm"
    on_failure = "Drop"
  }
  interceptor "c" {
    module     = "m.wasm"
    on_failure = "ignore"
  }
  value_serializer {
    builtin = "jsn"
  }
  partitioner {
    module     = "m.wasm"
    on_failure = "defualt"
  }
  source "kafka" {
    topics   = ["in"]
    group    = "g"
    start    = "earlist"
    delivery = "exactly-once"
  }
}
`,
			want: []string{
				`2:17: error: Invalid acks: acks must be "0", "1" or "all" ("-1" is "all"), not "ALL". Did you mean "all"?`,
				`3:17: error: Invalid compression: compression must be "none", "gzip", "snappy", "lz4" or "zstd", not "zstandard".`,
				`9:18: error: Invalid on_failure: interceptor: on_failure must be "skip", "fail" or "drop", not "skp". Did you mean "skip"?`,
				`13:18: error: Invalid on_failure: interceptor: on_failure must be "skip", "fail" or "drop", not "Drop". Did you mean "drop"?`,
				`17:18: error: Invalid on_failure: interceptor: on_failure must be "skip", "fail" or "drop", not "ignore".`,
				`20:15: error: Invalid builtin: unknown serializer "jsn" (built-in serializers: bytes, json, string). Did you mean "json"?`,
				`24:18: error: Invalid on_failure: partitioner: on_failure must be "default" or "fail", not "defualt". Did you mean "default"?`,
				`29:16: error: Invalid start: start must be "earliest" or "latest", not "earlist". Did you mean "earliest"?`,
				`30:16: error: Invalid delivery: delivery must be "exactly_once" or "at_least_once", not "exactly-once". Did you mean "exactly_once"?`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeModule(t, dir, "m.wasm")
			wantDiagnostics(t, filepath.Join(dir, "kpipe.hcl"), tt.src, tt.want)
		})
	}
}

// wantDiagnostics parses src as file and checks that Parse fails with
// diagnostics, each naming file, that start in order with want (their text
// after "FILE:").
func wantDiagnostics(t *testing.T, file, src string, want []string) {
	t.Helper()
	cfg, diags := Parse([]byte(src), file)
	if cfg != nil {
		t.Errorf("Parse returned a config despite errors")
	}
	var got []string
	for _, d := range diags {
		line := FormatDiagnostic(d)
		if !strings.HasPrefix(line, file+":") {
			t.Errorf("diagnostic without the file name: %s", line)
		}
		got = append(got, strings.TrimPrefix(line, file+":"))
	}
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("diagnostic %d:\n got: %s\nwant: %s...", i, got[i], want[i])
		}
	}
}

func TestLoadResolvesModulesAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	mod := writeModule(t, dir, "build/plugins/route.wasm")
	cfgDir := filepath.Join(dir, "examples")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfgDir, "q.hcl")
	src := "pipeline \"p\" {\n  partitioner { module = \"../build/plugins/route.wasm\" }\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Load from another working directory: the path must still resolve.
	t.Chdir(t.TempDir())
	cfg, diags := Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := cfg.Pipelines[0].Partitioner.Module; got != mod {
		t.Errorf("module = %q, want %q", got, mod)
	}

	_, diags = Load(filepath.Join(dir, "missing.hcl"))
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "missing.hcl") {
		t.Errorf("Load of a missing file: %v", diags)
	}
}

// TestLoadExpandsHome reads module paths that start with ~/ against $HOME,
// and leaves ~user and a ~ inside a name alone (relative to the file).
func TestLoadExpandsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	mod := writeModule(t, home, "plugins/route.wasm")
	dir := t.TempDir()
	for _, c := range []struct{ module, want string }{
		{"~/plugins/route.wasm", mod},
		{"~other/route.wasm", filepath.Join(dir, "~other/route.wasm")},
		{"a~/route.wasm", filepath.Join(dir, "a~/route.wasm")},
	} {
		if c.want != mod {
			writeModule(t, dir, strings.TrimPrefix(c.want, dir+string(filepath.Separator)))
		}
		path := filepath.Join(dir, "q.hcl")
		src := fmt.Sprintf("pipeline \"p\" {\n  partitioner { module = %q }\n}\n", c.module)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := Load(path)
		if diags.HasErrors() {
			t.Errorf("%s: %v", c.module, diags)
			continue
		}
		if got := cfg.Pipelines[0].Partitioner.Module; got != c.want {
			t.Errorf("%s: module = %q, want %q", c.module, got, c.want)
		}
	}
}

func TestWriteDiagnostics(t *testing.T) {
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad", Detail: "It is\n  bad.",
			Subject: &hcl.Range{Filename: "f.hcl", Start: hcl.Pos{Line: 3, Column: 7}}},
		{Severity: hcl.DiagWarning, Summary: "Odd"},
	}
	var b bytes.Buffer
	if err := WriteDiagnostics(&b, diags); err != nil {
		t.Fatal(err)
	}
	want := "f.hcl:3:7: error: Bad: It is bad.\nwarning: Odd\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{"512B", 512, false},
		{"64KiB", 64 << 10, false},
		{"64 MiB", 64 << 20, false},
		{"2GiB", 2 << 30, false},
		{"1KB", 1000, false},
		{"3MB", 3e6, false},
		{"1GB", 1e9, false},
		{"1.5MiB", 0, true},
		{"-1", 0, true},
		{"MiB", 0, true},
		{"5mib", 0, true},
		{"99999999999GiB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for n, want := range map[uint64]string{0: "0B", 1000: "1000B", 1024: "1KiB", 3 << 20: "3MiB", 1 << 30: "1GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// on_failure and a plugin's own circuit_breaker reach the pipeline options.
func TestParseFailurePolicies(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "m.wasm")
	src := `pipeline "p" {
  interceptor "redact" {
    module     = "m.wasm"
    on_failure = "fail"
    circuit_breaker {
      threshold = 2
      cooldown  = "3s"
    }
  }
  partitioner {
    builtin    = "murmur2"
    on_failure = "fail"
  }
}
`
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "kpipe.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := cfg.Pipelines[0]
	ic := p.Interceptors[0]
	if ic.OnFailure != pipeline.FailRecord || ic.CircuitBreaker == nil || ic.CircuitBreaker.Threshold != 2 || ic.CircuitBreaker.Cooldown != 3*time.Second {
		t.Errorf("interceptor: on_failure %v, circuit_breaker %+v", ic.OnFailure, ic.CircuitBreaker)
	}
	if p.Partitioner.OnFailure != pipeline.FailRecord || p.Partitioner.CircuitBreaker != nil {
		t.Errorf("partitioner: on_failure %v, circuit_breaker %+v", p.Partitioner.OnFailure, p.Partitioner.CircuitBreaker)
	}
	if n := len(p.Interceptors[0].pluginOptions()); n != 2 {
		t.Errorf("interceptor: %d plugin options, want on_failure and circuit_breaker", n)
	}
}

// TestBrokersNone checks the ways to ask for no brokers (kpipe run then
// starts its embedded broker): no brokers attribute, or an empty string,
// which is what env("KAFKA_BROKERS", "") gives while the variable is unset
// or empty (examples/quickstart.hcl). An empty list is an error
// (TestParseErrors).
func TestBrokersNone(t *testing.T) {
	t.Setenv("KPIPE_TEST_EMPTY", "")
	for _, brokers := range []string{
		"",
		`brokers = ""`,
		`brokers = env("KPIPE_TEST_UNSET_VAR", "")`,
		`brokers = env("KPIPE_TEST_EMPTY", "127.0.0.1:9092")`,
		`brokers = env.KPIPE_TEST_EMPTY`,
	} {
		src := "kafka {\n  " + brokers + "\n}\npipeline \"p\" {}\n"
		cfg, diags := Parse([]byte(src), "kpipe.hcl")
		if diags.HasErrors() {
			t.Errorf("%s: %s", brokers, diags.Error())
			continue
		}
		if len(cfg.Kafka.Brokers) != 0 {
			t.Errorf("%s: brokers %q, want none", brokers, cfg.Kafka.Brokers)
		}
	}
}
