package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/internal/testenv"
)

// kpipeBin is the binary under test, built once by TestMain.
var kpipeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kpipe-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kpipeBin = filepath.Join(dir, "kpipe")
	out, err := exec.Command("go", "build", "-o", kpipeBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building kpipe: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one kpipe invocation did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// kpipeTimeout bounds one kpipe invocation. It is generous because a cold
// compilation cache makes kpipe compile every Go guest it loads, which takes
// seconds per guest on an idle core and over a minute for the quickstart's
// four on a 2-core machine with a load average of 25 (measured).
const kpipeTimeout = 5 * time.Minute

// kpipe runs the binary with args and stdin, in dir if not empty. An
// invocation that overruns kpipeTimeout is interrupted, as Ctrl-C would, so
// that what it prints then (run's summary) tells where it was; the test
// fails.
func kpipe(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kpipeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kpipeBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second // then it is killed
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("kpipe %s did not end within %v and was interrupted: %v\n%s", strings.Join(args, " "), kpipeTimeout, err, r)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("kpipe %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kpipe %s: exit %d", strings.Join(args, " "), r.code)
	return r
}

// startBroker runs `kpipe broker` and returns its address.
func startBroker(t *testing.T, args ...string) string {
	t.Helper()
	return startServer(t, 30*time.Second, 10*time.Second, append([]string{"broker"}, args...)...).addr
}

// server is a running kpipe command that serves until interrupted.
type server struct {
	addr   string
	proc   *os.Process
	stderr *syncBuffer
}

// startServer runs kpipe with args, a command that prints its address as
// the first line of stdout (broker, gateway) and runs until interrupted. It
// fails the test if no address comes within addrWithin. When the test ends
// the command gets SIGINT and must exit 0 within stopWithin.
func startServer(t *testing.T, addrWithin, stopWithin time.Duration, args ...string) server {
	t.Helper()
	name := "kpipe " + args[0]
	cmd := exec.Command(kpipeBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s did not stop cleanly on SIGINT: %v\n%s", name, err, stderr.String())
			}
			t.Logf("%s stderr:\n%s", name, stderr.String())
		case <-time.After(stopWithin):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop within %v of SIGINT\n%s", name, stopWithin, stderr.String())
		}
	})
	select {
	case addr, ok := <-lines:
		if !ok || addr == "" {
			t.Fatalf("%s printed no address; stderr:\n%s", name, stderr.String())
		}
		return server{addr: addr, proc: cmd.Process, stderr: stderr}
	case <-time.After(addrWithin):
		t.Fatalf("%s printed no address within %v; stderr:\n%s", name, addrWithin, stderr.String())
	}
	return server{}
}

// interrupted sends sig to cmd, which a goroutine waits for on done, and
// checks that it exits 130 within bound (killing it after 30s).
func interrupted(t *testing.T, cmd *exec.Cmd, done <-chan error, sig os.Signal, bound time.Duration, stderr *syncBuffer) {
	t.Helper()
	sent := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("kpipe did not stop within 30s of %v\n%s", sig, stderr.String())
	}
	elapsed := time.Since(sent)
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d, want 130\nstderr:\n%s", code, stderr.String())
	}
	if elapsed > bound {
		t.Errorf("exited %v after %v, want at most %v\nstderr:\n%s", elapsed, sig, bound, stderr.String())
	}
	t.Logf("exited %v after %v", elapsed.Round(time.Millisecond), sig)
}

// consumed is one line of `kpipe consume`.
type consumed struct {
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Timestamp   int64             `json:"timestamp"`
	Key         *string           `json:"key"`
	Value       *string           `json:"value"`
	ValueBase64 string            `json:"value_base64"`
	Headers     map[string]string `json:"headers"`
}

func consumeAll(t *testing.T, brokers, topic string, n int) []consumed {
	t.Helper()
	r := kpipe(t, "", "", "consume", "--brokers", brokers, "--topic", topic, "--from-beginning",
		"--max", fmt.Sprint(n), "--timeout", testbroker.Timeout().String())
	if r.code != 0 {
		t.Fatalf("consume: %s", r)
	}
	var out []consumed
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var c consumed
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("consume printed a line that is not JSON: %q: %v", line, err)
		}
		out = append(out, c)
	}
	if len(out) != n {
		t.Fatalf("consume printed %d records, want %d:\n%s", len(out), n, r.stdout)
	}
	return out
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHelpAndUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{args: []string{"--help"}, code: 0, inStdout: "Exit codes"},
		{args: []string{"run", "--help"}, code: 0, inStdout: "--strict"},
		{args: []string{"plugin", "test", "--help"}, code: 0, inStdout: "--config"},
		{args: []string{"nosuch"}, code: 2, inStderr: "unknown command"},
		{args: []string{"run", "--nosuch"}, code: 2, inStderr: "unknown flag"},
		{args: []string{"run", "--format", "xml"}, code: 2, inStderr: "--format"},
		{args: []string{"consume", "--topic", "t"}, code: 2, inStderr: "--brokers"},
		{args: []string{"validate"}, code: 2, inStderr: "--config"},
		{args: []string{"plugin", "inspect"}, code: 2, inStderr: "kpipe plugin inspect needs the module to use"},
		{args: []string{"--log-level", "loud", "validate", "--config", "x"}, code: 2, inStderr: "--log-level"},
		{args: []string{"broker", "--topic", "t:zero"}, code: 2, inStderr: "partition count"},
		{args: []string{"broker", "--topic", "t:-1"}, code: 2, inStderr: "partition count"},
		// A topic name Kafka refuses is a usage error naming the flag,
		// not a consumer that waits for records that cannot exist.
		{args: []string{"broker", "--topic", "bad name!:1"}, code: 2, inStderr: `--topic: topic "bad name!:1": topic name "bad name!" has a character other than`},
		{args: []string{"run", "--topic", "a b"}, code: 2, inStderr: `--topic: topic name "a b" has a character other than`},
		{args: []string{"consume", "--brokers", "127.0.0.1:9", "--topic", "ok,..", "--max", "1"}, code: 2, inStderr: `--topic: ".." is not a topic name`},
		// Negative and meaningless numbers and durations are usage errors
		// of every command, found before anything runs.
		{args: []string{"run", "--flush-timeout", "-5s"}, code: 2, inStderr: `invalid argument "-5s" for "--flush-timeout" flag: must not be negative`},
		{args: []string{"run", "--flush-timeout", "0"}, code: 2, inStderr: `"--flush-timeout" flag: must be longer than zero`},
		{args: []string{"run", "--flush-timeout", "30"}, code: 2, inStderr: `"--flush-timeout" flag: want a duration`},
		{args: []string{"consume", "--brokers", "127.0.0.1:1", "--topic", "t", "--timeout", "-1s"}, code: 2, inStderr: `"--timeout" flag: must not be negative`},
		{args: []string{"consume", "--brokers", "127.0.0.1:1", "--topic", "t", "--max", "-1"}, code: 2, inStderr: `"--max" flag: want a whole number from 0 to`},
		{args: []string{"plugin", "test", "x.wasm", "--timeout", "-1ms"}, code: 2, inStderr: `"--timeout" flag: must not be negative`},
		{args: []string{"plugin", "test", "x.wasm", "--timeout", "0s"}, code: 2, inStderr: `"--timeout" flag: must be longer than zero`},
		{args: []string{"plugin", "test", "x.wasm", "--partitions", "0"}, code: 2, inStderr: `"--partitions" flag: want a whole number from 1 to`},
		{args: []string{"plugin", "test", "x.wasm", "--partitions", "4294967296"}, code: 2, inStderr: `"--partitions" flag: want a whole number from 1 to`},
		{args: []string{"broker", "--listen", "127.0.0.1:99999"}, code: 2, inStderr: `--listen "127.0.0.1:99999": want HOST:PORT with a port from 0 to 65535`},
		{args: []string{"broker", "--listen", "127.0.0.1"}, code: 2, inStderr: `--listen "127.0.0.1": want HOST:PORT`},
		{args: []string{"run", "--brokers", "127.0.0.1:-1", "--topic", "t"}, code: 2, inStderr: `--brokers "127.0.0.1:-1": want HOST:PORT with a port from 1 to 65535`},
		{args: []string{"consume", "--brokers", "a:b:c", "--topic", "t"}, code: 2, inStderr: `--brokers "a:b:c": want HOST:PORT`},
		{args: []string{"consume", "--brokers", "127.0.0.1:1", "--topic", "t", "--timeout", "1s"}, code: 3, inStderr: "no broker of 127.0.0.1:1 answered"},
		{args: []string{"run", "--brokers", "127.0.0.1:1", "--topic", "t"}, code: 3, inStderr: "no seed broker"},
		{args: []string{"run", "--topic", "t", "--input", "/nonexistent/input"}, code: 3, inStderr: "no such file"},
		{args: []string{"plugin", "test", "/nonexistent.wasm"}, code: 3, inStderr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := kpipe(t, "", "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.inStdout) || !strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("want exit %d, stdout containing %q, stderr containing %q; got %s", tt.code, tt.inStdout, tt.inStderr, r)
			}
		})
	}
}

// TestRunBytesExact sends data that is not UTF-8 through run's JSON input
// and reads it back with consume: base64 fields carry it exactly, a line
// holding such bytes in a JSON string fails with its number instead of being
// sent with U+FFFD in their place, and null and empty header values stay
// apart both ways.
func TestRunBytesExact(t *testing.T) {
	brokers := startBroker(t, "--topic", "bytes:1")
	input := `{"key_base64":"/wA=","value_base64":"gICA","headers":{"n":null,"e":"","t":"x"}}` + "\n" +
		"{\"value\":\"caf\xe9\"}\n" +
		`{"value":"\udc00"}` + "\n"
	r := kpipe(t, "", input, "run", "--brokers", brokers, "--topic", "bytes")
	if r.code != 1 {
		t.Fatalf("want exit 1 (lines 2 and 3 malformed), got %s", r)
	}
	for _, want := range []string{
		"line 2: column 14: byte 0xe9 is not valid UTF-8",
		`line 3: column 11: \udc00 is half of a UTF-16 surrogate pair`,
		"delivered  1",
		"failed     2 (2 malformed lines)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
		}
	}
	r = kpipe(t, "", "", "consume", "--brokers", brokers, "--topic", "bytes", "--from-beginning", "--max", "1", "--timeout", "30s")
	if r.code != 0 {
		t.Fatalf("consume: %s", r)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("consume printed %q: %v", r.stdout, err)
	}
	want := map[string]any{"key": nil, "key_base64": "/wA=", "value": nil, "value_base64": "gICA",
		"headers": map[string]any{"n": nil, "e": "", "t": "x"}}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v (consume printed %s)", k, got[k], v, r.stdout)
		}
	}
	if h, _ := got["headers"].(map[string]any); h == nil || h["n"] != nil || h["e"] != "" {
		t.Errorf("null and empty header values not kept apart: %s", r.stdout)
	}
}

// TestRunMalformedLines runs a plain producer on the embedded broker with
// malformed lines in the input.
func TestRunMalformedLines(t *testing.T) {
	input := `{"key":"a","value":"1"}
not json
{"value":"2","partition":-1}

{"value":"3","colour":"red"}
{"key":"b","value":{"n":4}}
`
	r := kpipe(t, "", input, "run", "--topic", "t")
	if r.code != 1 {
		t.Fatalf("want exit 1 (some lines malformed), got %s", r)
	}
	for _, want := range []string{
		"embedded in-memory broker",
		"line 2: invalid JSON record",
		"line 3: \"partition\" must not be negative",
		"line 5: invalid JSON record: unknown field \"colour\"",
		"5 records read from stdin",
		"delivered  2",
		"failed     3 (3 malformed lines)",
		"records per partition:",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
		}
	}

	// --strict stops at the first malformed line: line 5 is never read.
	r = kpipe(t, "", input, "run", "--topic", "t", "--strict")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2:") || strings.Contains(r.stderr, "line 5:") {
		t.Errorf("--strict: want exit 1 after line 2 only, got %s", r)
	}

	// A clean input exits 0.
	r = kpipe(t, "", "a\nb\n\n", "run", "--topic", "t", "--format", "raw")
	if r.code != 0 || !strings.Contains(r.stderr, "delivered  3") {
		t.Errorf("raw input: want exit 0 and 3 delivered, got %s", r)
	}

	// A record without a topic fails with its line number.
	r = kpipe(t, "", `{"value":"x"}`+"\n", "run")
	if r.code != 1 || !strings.Contains(r.stderr, "line 1: ") {
		t.Errorf("no topic: want exit 1 with line 1 reported, got %s", r)
	}
	// Also when the record is not the first of the lines read together.
	r = kpipe(t, "", `{"topic":"t","value":"a"}`+"\n"+`{"topic":"t","value":"b"}`+"\n"+`{"value":"x"}`+"\n", "run")
	if r.code != 1 || !strings.Contains(r.stderr, "line 3: ") || strings.Contains(r.stderr, "line 1: ") || !strings.Contains(r.stderr, "delivered  2") {
		t.Errorf("no topic on line 3: want exit 1 with line 3 reported, got %s", r)
	}
}

// TestRunInputDirectory: an --input that is a directory is refused at once
// with its name, by run and by plugin test, instead of failing at the first
// read after the run started (which printed a summary that waited a second
// for "unread lines" of a directory).
func TestRunInputDirectory(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	r := kpipe(t, "", "", "run", "--topic", "t", "--input", dir)
	if r.code != 3 || !strings.Contains(r.stderr, dir+" is a directory") || strings.Contains(r.stderr, "records read") {
		t.Errorf("run --input DIR: want exit 3 naming the directory before any summary, got %s", r)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("run --input DIR took %v", d)
	}
	r = kpipe(t, "", "", "plugin", "test", "../../examples/plugins/wat/noop.wasm", "--input", dir)
	if r.code != 3 || !strings.Contains(r.stderr, "--input: "+dir+" is a directory") {
		t.Errorf("plugin test --input DIR: want exit 3 naming the directory, got %s", r)
	}
}

// TestBrokerWithKcat starts `kpipe broker`, produces to it with kpipe run and
// kcat, and reads everything back with kcat and kpipe consume.
func TestBrokerWithKcat(t *testing.T) {
	kcat := testenv.RequireTool(t, "kcat")
	addr := startBroker(t, "--topic", "events:2")

	r := kpipe(t, "", `{"key":"k1","value":"from-kpipe","headers":{"h":"v"},"partition":1}`+"\n",
		"run", "--brokers", addr, "--topic", "events")
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod := exec.CommandContext(ctx, kcat, "-b", addr, "-t", "events", "-P", "-p", "0", "-K", ":")
	prod.Stdin = strings.NewReader("k2:from-kcat\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, kcat, "-b", addr, "-t", "events", "-C", "-e", "-q",
		"-f", "%p %k %s %h\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"1 k1 from-kpipe h=v\n", "0 k2 from-kcat \n"} {
		if !strings.Contains(got, want) {
			t.Errorf("kcat read %q, want a line %q", got, want)
		}
	}
	recs := consumeAll(t, addr, "events", 2)
	byKey := map[string]consumed{}
	for _, c := range recs {
		byKey[*c.Key] = c
	}
	if c := byKey["k1"]; c.Partition != 1 || *c.Value != "from-kpipe" || c.Headers["h"] != "v" {
		t.Errorf("consume k1 = %+v", c)
	}
	if c := byKey["k2"]; c.Partition != 0 || *c.Value != "from-kcat" {
		t.Errorf("consume k2 = %+v", c)
	}
}

// TestConsumeIdleTimeout checks that consume stops after --timeout without
// records, and fails when --max is not reached.
func TestConsumeIdleTimeout(t *testing.T) {
	addr := startBroker(t, "--topic", "empty:1")
	start := time.Now()
	r := kpipe(t, "", "", "consume", "--brokers", addr, "--topic", "empty", "--from-beginning", "--timeout", "1s")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("empty topic without --max: %s", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("consume took %v to notice 1s of idleness", d)
	}
	r = kpipe(t, "", "", "consume", "--brokers", addr, "--topic", "empty", "--from-beginning", "--timeout", "1s", "--max", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "got 0 of 1 records") || strings.Contains(r.stderr, "does not exist") {
		t.Errorf("empty topic with --max 1: %s", r)
	}
	// A topic that does not exist is named when consume starts and
	// again in the error, and asking about it does not create it.
	for range 2 {
		r = kpipe(t, "", "", "consume", "--brokers", addr, "--topic", "empty,nosuch", "--timeout", "1s", "--max", "1")
		if r.code != 1 || !strings.Contains(r.stderr, "topic nosuch does not exist on "+addr+" (yet): waiting for it") ||
			!strings.Contains(r.stderr, "got 0 of 1 records: topic nosuch does not exist") {
			t.Errorf("absent topic with --max 1: %s", r)
		}
	}
}

// quickstartDir lays out a copy of the repository's quickstart as it would
// be after `make plugins`: DIR/examples/quickstart.{hcl,jsonl} and
// DIR/build/plugins/*.wasm, with the plugins built by plugintest. The real
// files are used, so the test checks the module paths of quickstart.hcl.
func quickstartDir(t *testing.T) string {
	t.Helper()
	root := plugintest.RepoRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"quickstart.hcl", "quickstart.jsonl"} {
		b, err := os.ReadFile(filepath.Join(root, "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "examples", f), string(b))
	}
	for _, p := range []string{"headerstamp", "redact", "schemaprefix", "route"} {
		wasm := plugintest.GoPlugin(t, "examples/plugins/"+p)
		if err := os.MkdirAll(filepath.Join(dir, "build", "plugins"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(wasm, filepath.Join(dir, "build", "plugins", p+".wasm")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestQuickstart runs examples/quickstart.hcl on examples/quickstart.jsonl
// against a broker (KPIPE_TEST_BROKERS or kfake) and reads the records back
// with kpipe consume.
func TestQuickstart(t *testing.T) {
	dir := quickstartDir(t)
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 3)
	bs := strings.Join(brokers, ",")

	// Run from an unrelated working directory: module paths must resolve
	// against the configuration file.
	r := kpipe(t, t.TempDir(), "", "run",
		"--config", filepath.Join(dir, "examples", "quickstart.hcl"),
		"--input", filepath.Join(dir, "examples", "quickstart.jsonl"),
		"--brokers", bs, "--topic", topic)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"6 records read", "delivered  5", "filtered   1", "failed     0",
		topic + "[0] ", topic + "[1] ", topic + "[2] "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("run summary does not contain %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "embedded") {
		t.Errorf("run used the embedded broker despite --brokers:\n%s", r.stderr)
	}

	recs := consumeAll(t, bs, topic, 5)
	byKey := map[string]consumed{}
	for _, c := range recs {
		if c.Key == nil || c.Value == nil {
			t.Fatalf("record with null key or value: %+v", c)
		}
		byKey[*c.Key] = c
	}
	if _, ok := byKey["eu-1004"]; ok {
		t.Errorf("eu-1004 has no customer and should have been filtered out by redact")
	}
	wantPartition := map[string]int32{"eu-1001": 0, "us-1002": 1, "apac-1003": 2, "us-1005": 1}
	for key, c := range byKey {
		if c.Headers["source"] != "kpipe-quickstart" || c.Headers["kpipe-seq"] == "" {
			t.Errorf("%s: headers %v, want source=kpipe-quickstart and a kpipe-seq (headerstamp)", key, c.Headers)
		}
		v := *c.Value
		if !strings.HasPrefix(v, "\x00\x00\x00\x00\x2a{") {
			t.Errorf("%s: value %q does not start with magic byte 0 and schema id 42 (schemaprefix)", key, v)
		}
		if strings.Contains(v, "4111") || strings.Contains(v, "5500") || strings.Contains(v, "\"cvv\":\"") && !strings.Contains(v, "***") {
			t.Errorf("%s: value %q still holds card data (redact)", key, v)
		}
		if p, ok := wantPartition[key]; ok && c.Partition != p {
			t.Errorf("%s: partition %d, want %d (route by key prefix)", key, c.Partition, p)
		}
	}
	if c := byKey["us-1002"]; c.Headers["channel"] != "web" {
		t.Errorf("us-1002 lost its own header: %v", c.Headers)
	}
	if c := byKey["test-1006"]; c.Timestamp != time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("test-1006 timestamp %d, want 2026-01-01T00:00:00Z", c.Timestamp)
	}
	if len(byKey) != 5 {
		t.Errorf("got keys %v, want all but eu-1004", byKey)
	}
}

// TestQuickstartEmbedded runs the quickstart with no brokers at all: kpipe
// must start its embedded broker and say so.
func TestQuickstartEmbedded(t *testing.T) {
	dir := quickstartDir(t)
	r := kpipe(t, filepath.Join(dir, "examples"), "", "run", "--config", "quickstart.hcl", "--input", "quickstart.jsonl")
	if r.code != 0 || !strings.Contains(r.stderr, "started an embedded in-memory broker") || !strings.Contains(r.stderr, "delivered  5") {
		t.Errorf("want exit 0, the embedded broker announced and 5 delivered; got %s", r)
	}
	r = kpipe(t, dir, "", "validate", "--config", "examples/quickstart.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "OK (1 pipelines, 5 plugins)") {
		t.Errorf("validate quickstart: %s", r)
	}
}

// TestValidate checks kpipe validate on configurations with one class of
// mistake each, asserting the exact positions printed.
func TestValidate(t *testing.T) {
	root := plugintest.RepoRoot(t)
	trap := filepath.Join(root, "examples", "plugins", "wat", "trap.wasm") // an interceptor
	keyhash := filepath.Join(root, "examples", "plugins", "wat", "keyhash.wasm")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "notwasm.wasm"), "hello")
	t.Setenv("KPIPE_E2E_SET", "x")
	tests := []struct {
		name string
		src  string
		want []string // "LINE:COL: error: SUMMARY" prefixes, in order
	}{
		{
			name: "good",
			src: `kafka {
  brokers = ["127.0.0.1:1"]
  client_id = env("KPIPE_E2E_SET")
}
pipeline "p" {
  topic = "t"
  interceptor "trap" { module = "` + trap + `" }
  partitioner { module = "` + keyhash + `" }
  value_serializer { builtin = "json" }
}
`,
		},
		{
			name: "unknown fields and bad types",
			src: `kafka {
  linger_ms = 5
  acks      = ["all"]
}
pipeline "p" {
  topic = "t"
  interceptor "i" {
    module = "` + trap + `"
    pool   = 2
  }
}
`,
			want: []string{
				`2:3: error: Unsupported argument: An argument named "linger_ms" is not expected here.`,
				"3:15: error: Incorrect attribute value type",
				`9:5: error: Unsupported argument: An argument named "pool" is not expected here.`,
			},
		},
		{
			name: "modules: missing, not wasm, wrong kind",
			src: `pipeline "p" {
  interceptor "gone" {
    module = "nope.wasm"
  }
  interceptor "text" {
    module = "notwasm.wasm"
  }
  partitioner {
    module = "` + trap + `"
  }
}
`,
			want: []string{
				"3:14: error: Module not found",
				"6:14: error: Cannot load module",
				"9:14: error: Cannot load module: wasmhost: load plugin \"trap\" from " + trap + ": wrong kind",
			},
		},
		{
			name: "values and rules",
			src: `kafka {
  acks        = "1"
  idempotence = true
  linger      = "soon"
  batch_max_bytes = "1 MB"
  compression = "brotli"
  client_id   = env("KPIPE_E2E_UNSET")
}
pipeline "p" {
  key_serializer { builtin = "avro" }
  partitioner {
    builtin      = "sticky"
    memory_limit = "1MiB"
  }
}
pipeline "p" {}
`,
			want: []string{
				`3:3: error: Idempotence needs acks = "all"`,
				"4:17: error: Invalid duration",
				"6:17: error: Invalid compression",
				"7:22: error: Invalid function argument",
				"10:30: error: Invalid builtin: unknown serializer \"avro\"",
				"13:5: error: Not allowed with a builtin",
				"16:10: error: Duplicate pipeline name",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".hcl"), tt.src)
			r := kpipe(t, dir, "", "validate", "--config", path)
			if len(tt.want) == 0 {
				if r.code != 0 || !strings.Contains(r.stdout, "OK") {
					t.Fatalf("want OK, got %s", r)
				}
				return
			}
			if r.code != 1 {
				t.Fatalf("want exit 1, got %s", r)
			}
			var got []string
			for _, line := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(line, path+":") {
					got = append(got, strings.TrimPrefix(line, path+":"))
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), r.stderr)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("diagnostic %d:\n got: %s\nwant: %s...", i, got[i], tt.want[i])
				}
			}
		})
	}

	r := kpipe(t, dir, "", "validate", "--config", filepath.Join(dir, "missing.hcl"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing.hcl:1:1: error: Cannot read configuration file") {
		t.Errorf("missing file: %s", r)
	}
	// run refuses a plugin that does not load, as validate does: at its
	// module attribute.
	wrongKind := writeFile(t, filepath.Join(dir, "wrongkind.hcl"), "pipeline \"p\" {\n  topic = \"t\"\n  partitioner { module = \""+trap+"\" }\n}\n")
	r = kpipe(t, dir, `{"value":"x"}`, "run", "--config", wrongKind)
	if r.code != 1 || !strings.Contains(r.stderr, wrongKind+":3:26: error: Cannot load module: wasmhost: load plugin \"trap\" from "+trap+": wrong kind") || strings.Contains(r.stderr, "records read") {
		t.Errorf("run with a module of the wrong kind: %s", r)
	}
	// run refuses an invalid configuration before sending anything.
	bad := writeFile(t, filepath.Join(dir, "bad.hcl"), "pipeline \"p\" {\n  topik = \"t\"\n}\n")
	r = kpipe(t, dir, `{"value":"x"}`, "run", "--config", bad)
	if r.code != 1 || !strings.Contains(r.stderr, bad+":2:3: error: Unsupported argument") || strings.Contains(r.stderr, "records read") {
		t.Errorf("run with an invalid config: %s", r)
	}
}

// TestValidateGoGuestMemory gives validate and run a Go guest with too little
// memory: its runtime dies at start and writes a stack trace of some forty
// lines on stderr. Both must print the one diagnostic, at memory_limit, and
// nothing else.
func TestValidateGoGuestMemory(t *testing.T) {
	guest := plugintest.GoPlugin(t, "examples/plugins/headerstamp")
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "mem.hcl"), "pipeline \"p\" {\n  interceptor \"i\" {\n    module       = \""+guest+
		"\"\n    config       = { sequence_header = \"seq\" }\n    memory_limit = \"3MiB\"\n  }\n}\n")
	want := path + `:5:20: error: Limit too small for this module: the module loads with the default memory_limit, but not with this one: wasmhost: load plugin "i" from ` + guest +
		": _initialize: memory limit: module closed with exit_code(2); the plugin said: fatal error: runtime: cannot allocate memory\nkpipe: " + path + ": 1 errors\n"
	cache := t.TempDir()
	for _, cmd := range []string{"validate", "run"} {
		r := kpipe(t, dir, `{"value":"x"}`, cmd, "--wasm-cache", cache, "--config", path)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%s: want exit 1 and only\n%s\ngot %s", cmd, want, r)
		}
	}
}

// TestPluginTestTrap runs plugin test on an interceptor whose on_send always
// traps: every fault is printed, every record is still tested, exit 1.
func TestPluginTestTrap(t *testing.T) {
	trap := plugintest.WAT(t, "examples/plugins/wat/trap.wasm")
	input := `{"key":"a","value":"1"}` + "\n" + `{"key":"b","value":"2"}` + "\n"
	r := kpipe(t, "", input, "plugin", "test", trap, "--input", "-", "--log-level", "off")
	if r.code != 1 {
		t.Fatalf("want exit 1, got %s", r)
	}
	for _, want := range []string{
		`record 1 (line 1): topic="test" key="a" value="1"`,
		"on_send:         FAULT (trap): wasm error: unreachable",
		"on_ack:          ok (offset 0)",
		`record 2 (line 2): topic="test" key="b" value="2"`,
		"on_ack:          ok (offset 1)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "FAULT (trap)"); n != 2 {
		t.Errorf("%d faults printed, want 2:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stderr, "2 hook calls failed") {
		t.Errorf("stderr: %s", r.stderr)
	}

	// Without --input: the built-in samples; piped stdin is not read,
	// and kpipe says so.
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	r = kpipe(t, "", `{"key":"piped","value":"v"}`+"\n", "plugin", "test", noop)
	if r.code != 0 || strings.Contains(r.stdout, "piped") || !strings.Contains(r.stdout, "record 4") ||
		!strings.Contains(r.stderr, "stdin is read only with --input -") {
		t.Errorf("plugin test with piped stdin and no --input should test the samples and say so: %s", r)
	}
	r = kpipe(t, "", `{"key":"piped","value":"v"}`+"\n", "plugin", "test", noop, "--input", "-")
	if r.code != 0 || !strings.Contains(r.stdout, `record 1 (line 1): topic="test" key="piped" value="v"`) || strings.Contains(r.stdout, "record 2") {
		t.Errorf("plugin test --input -: %s", r)
	}
	r = kpipe(t, "", "", "plugin", "test", noop)
	if r.code != 0 || !strings.Contains(r.stdout, `key="user-1"`) || !strings.Contains(r.stdout, "record 4") {
		t.Errorf("plugin test with empty stdin should use the samples: %s", r)
	}

	r = kpipe(t, "", "", "plugin", "inspect", trap)
	for _, want := range []string{"abi:      v1", "kinds:    interceptor", "kpipe_on_send (i32) -> i64", "load:     ok"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("inspect: want exit 0 and %q, got %s", want, r)
		}
	}
	r = kpipe(t, "", "", "plugin", "inspect", noop)
	if want := "features: ACK_NO_RECORD (0x2)\nload:     ok"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("inspect noop: want exit 0 and %q, got %s", want, r)
	}
}

// TestPluginTestSendOnly runs plugin test on an interceptor without
// kpipe_on_ack: on_ack is reported as not called, never as ok.
func TestPluginTestSendOnly(t *testing.T) {
	mod := plugintest.WAT(t, "wasmhost/testdata/sendonly.wasm")
	r := kpipe(t, "", `{"key":"a","value":"1"}`+"\n", "plugin", "test", mod, "--input", "-")
	if r.code != 0 {
		t.Fatalf("want exit 0, got %s", r)
	}
	if want := "on_ack:          not called, the plugin does not observe acks"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
	}
	if strings.Contains(r.stdout, "on_ack:          ok") {
		t.Errorf("on_ack reported as called:\n%s", r.stdout)
	}
}

// TestPluginTestSerializerFailure runs plugin test on a serializer that
// fails every key: a record whose key failed does not get its value
// serialized, which the output must not call a null value, while a null key
// is not serialized at all and the value is.
func TestPluginTestSerializerFailure(t *testing.T) {
	mod := plugintest.WAT(t, "wasmhost/testdata/key_error.wasm")
	input := `{"key":"a","value":"1"}` + "\n" + `{"key":null,"value":"2"}` + "\n"
	r := kpipe(t, "", input, "plugin", "test", mod, "--input", "-", "--log-level", "off")
	if r.code != 1 {
		t.Fatalf("want exit 1, got %s", r)
	}
	record2 := strings.Index(r.stdout, "record 2")
	if record2 < 0 {
		t.Fatalf("no record 2:\n%s", r.stdout)
	}
	for _, c := range []struct{ out, want string }{
		{r.stdout[:record2], "serialize key:   ERROR: no key schema"},
		{r.stdout[:record2], "serialize value: not called, the record failed before"},
		{r.stdout[record2:], "serialize key:   null, not called"},
		{r.stdout[record2:], "serialize value: 37 bytes"},
	} {
		if !strings.Contains(c.out, c.want) {
			t.Errorf("stdout does not contain %q:\n%s", c.want, r.stdout)
		}
	}
}

// TestPluginInspectInitFailure runs plugin inspect on an interceptor whose
// kpipe_init always fails, as plugins that need a config do without one: the
// kinds are still shown, with why the module does not load and a hint about
// --config, exit 1.
func TestPluginInspectInitFailure(t *testing.T) {
	mod := plugintest.WAT(t, "wasmhost/testdata/init_error.wasm")
	r := kpipe(t, "", "", "plugin", "inspect", mod)
	if r.code != 1 {
		t.Fatalf("want exit 1, got %s", r)
	}
	for _, want := range []string{"abi:      v1", "kinds:    interceptor", "load:     FAILED", "kpipe_init failed: no config", "--config"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	}
}

// TestRunInterrupt sends SIGINT to a run whose stdin stays open: the run must
// stop waiting for input, flush what it sent, print its summary and exit 130.
func TestRunInterrupt(t *testing.T) {
	cmd := exec.Command(kpipeBin, "run", "--topic", "t")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if _, err := io.WriteString(stdin, `{"value":"one"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	// Give kpipe time to start its broker and send the line.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "embedded") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("run did not stop within 30s of SIGINT; stderr:\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"1 records read from stdin", "delivered  1", "interrupted"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
		}
	}
}

// TestRunStrictStopsAtFailedRecord: with --strict a record that fails (here:
// no topic anywhere) stops the reading, without --strict every line is read.
func TestRunStrictStopsAtFailedRecord(t *testing.T) {
	var in strings.Builder
	in.WriteString(`{"value":"no topic"}` + "\n")
	for i := 0; i < 2000; i++ {
		in.WriteString(`{"value":"x","topic":"t"}` + "\n")
	}
	r := kpipe(t, "", in.String(), "run")
	if r.code != 1 || !strings.Contains(r.stderr, "2001 records read") || !strings.Contains(r.stderr, "delivered  2000") {
		t.Errorf("without --strict: %s", r)
	}
	r = kpipe(t, "", in.String(), "run", "--strict")
	if r.code != 1 || strings.Contains(r.stderr, "2001 records read") || !strings.Contains(r.stderr, "line 1: ") {
		t.Errorf("--strict: want exit 1 and reading stopped early, got %s", r)
	}
}

// TestLogFormatJSON checks that --log-format json makes every log line JSON.
func TestLogFormatJSON(t *testing.T) {
	trap := plugintest.WAT(t, "examples/plugins/wat/trap.wasm")
	r := kpipe(t, "", `{"value":"x"}`+"\n", "plugin", "test", trap, "--input", "-", "--log-format", "json", "--log-level", "warn")
	n := 0
	for _, line := range strings.Split(r.stderr, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
		if m["@level"] == "warn" && m["plugin"] == "trap" {
			n++
		}
	}
	if n == 0 {
		t.Errorf("no JSON warning about the trap in stderr:\n%s", r.stderr)
	}
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunTransactional: with a transactional_id the whole input is one
// transaction, committed when every record was delivered and aborted
// otherwise; read_committed consumers see only the committed run.
func TestRunTransactional(t *testing.T) {
	brokers := testbroker.Brokers(t)
	bs := strings.Join(brokers, ",")
	topic := testbroker.CreateTopic(t, brokers, 1)
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "tx.hcl"), fmt.Sprintf(`kafka {
  transactional_id = "kpipe-e2e-%d"
}
pipeline "p" {
  topic = %q
}
`, time.Now().UnixNano(), topic))

	r := kpipe(t, "", `{"value":"aborted-1"}`+"\n"+`{"value":"x","partition":7}`+"\n", "run", "--config", cfg, "--brokers", bs)
	if r.code != 1 || !strings.Contains(r.stderr, "aborting the transaction") {
		t.Fatalf("run with a failing record: want exit 1 and an abort, got %s", r)
	}
	r = kpipe(t, "", `{"value":"committed-1"}`+"\n"+`{"value":"committed-2"}`+"\n", "run", "--config", cfg, "--brokers", bs)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	r = kpipe(t, "", "", "consume", "--brokers", bs, "--topic", topic, "--from-beginning",
		"--isolation", "read_committed", "--timeout", "3s")
	if r.code != 0 {
		t.Fatalf("consume: %s", r)
	}
	if strings.Contains(r.stdout, "aborted-1") || strings.Count(r.stdout, `"committed-`) != 2 {
		t.Errorf("read_committed consume printed:\n%s\nwant committed-1 and committed-2 only", r.stdout)
	}
	// The aborted record was written: a read_uncommitted consumer sees it.
	r = kpipe(t, "", "", "consume", "--brokers", bs, "--topic", topic, "--from-beginning", "--timeout", "3s")
	if r.code != 0 || !strings.Contains(r.stdout, "aborted-1") {
		t.Errorf("read_uncommitted consume: want aborted-1, got %s", r)
	}
}

// TestPluginTestBatch runs plugin test --batch: the records go through the
// pipeline's stages alone and in batches, and the records whose results
// differ are reported. batch.wat, a test module, returns "every record
// unchanged" for a whole batch call whose first record names partition
// 23, where its per-record hook changes the records of mode 3.
func TestPluginTestBatch(t *testing.T) {
	keyhash := plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm")
	r := kpipe(t, "", "", "plugin", "test", keyhash, "--batch", "4")
	if r.code != 0 || !strings.Contains(r.stdout, "batch: 4 records through the pipeline's stages alone and in batches of 4\n  no differences") {
		t.Errorf("keyhash --batch 4: %s", r)
	}
	batch := plugintest.WAT(t, "wasmhost/testdata/batch.wasm")
	input := `{"key":"a","value":"1","partition":3}
{"key":"b","value":"2","partition":3}
{"key":"c","value":"3","partition":23}
{"key":"d","value":"4","partition":3}
`
	r = kpipe(t, "", input, "plugin", "test", batch, "--kind", "interceptor", "--batch", "2", "--input", "-", "--log-level", "off")
	if r.code != 1 || !strings.Contains(r.stdout, "record 4 differs:") || strings.Count(r.stdout, "differs:") != 1 ||
		!strings.Contains(r.stderr, "1 records differ between batch and single calls") {
		t.Errorf("batch.wat --batch 2: %s", r)
	}
	if r := kpipe(t, "", "", "plugin", "test", keyhash, "--batch", "1"); r.code != 2 {
		t.Errorf("--batch 1: want a usage error, got %s", r)
	}
}
