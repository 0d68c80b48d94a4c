package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// brokerProc is a `kpipe broker` the test can kill.
type brokerProc struct {
	cmd  *exec.Cmd
	addr string
}

func startKillableBroker(t *testing.T, args ...string) *brokerProc {
	t.Helper()
	cmd := exec.Command(kpipeBin, append([]string{"broker"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &brokerProc{cmd: cmd}
	t.Cleanup(b.kill)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case b.addr = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("kpipe broker printed no address within 30s")
	}
	if b.addr == "" {
		t.Fatal("kpipe broker printed no address")
	}
	return b
}

func (b *brokerProc) kill() {
	if b.cmd.ProcessState == nil {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
	}
}

// summaryCount reads "  NAME  N" from a run's summary.
func summaryCount(t *testing.T, stderr, name string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  ` + name + ` +(\d+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("summary has no %q count:\n%s", name, stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestRunBrokerLost: the broker is killed while a run is producing 200,000
// lines and never comes back. The run must stop reading once a record has
// waited max_block for room in the buffer, flush for --flush-timeout, and
// end with its summary: lines read, delivered, failed and not read, which
// add up to the input, and exit status 1. With a transaction, the abort
// gets its own --flush-timeout and fails, and the run ends as well. The
// bound checked is max_block + 2 × flush-timeout + 10s of slack.
func TestRunBrokerLost(t *testing.T) {
	const (
		total    = 200_000
		first    = 20_000 // lines written before the broker dies
		maxBlock = 2 * time.Second
		flush    = 2 * time.Second
	)
	for _, tc := range []struct {
		name  string
		kafka string
		term  bool // SIGTERM half a second after the broker died
	}{
		{"idempotent", "", false},
		{"transactional", fmt.Sprintf("transactional_id = \"kpipe-lost-%d\"", time.Now().UnixNano()), false},
		{"interrupted", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startKillableBroker(t, "--topic", "lost:3")
			dir := t.TempDir()
			cfg := writeFile(t, filepath.Join(dir, "lost.hcl"), fmt.Sprintf(`kafka {
  max_block = %q
  %s
}
pipeline "p" {
  topic = "lost"
}
`, maxBlock, tc.kafka))
			cmd := exec.Command(kpipeBin, "run", "--config", cfg, "--brokers", b.addr, "--flush-timeout", flush.String())
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				}
			}()
			write := func(from, to int) {
				w := bufio.NewWriter(stdin)
				for i := from; i < to; i++ {
					fmt.Fprintf(w, "{\"value\":\"record-%07d\"}\n", i)
				}
				_ = w.Flush() // fails once kpipe stopped reading: that is the point
			}
			write(0, first)
			time.Sleep(time.Second)
			b.kill()
			lost := time.Now()
			go func() {
				write(first, total)
				stdin.Close()
			}()

			bound := maxBlock + 2*flush + 10*time.Second
			if tc.term {
				// The wait for room ends at once; the flush
				// takes its --flush-timeout.
				time.Sleep(500 * time.Millisecond)
				_ = cmd.Process.Signal(syscall.SIGTERM)
				bound = flush + 10*time.Second
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(bound):
				_ = cmd.Process.Kill()
				t.Fatalf("run still going %v after the broker died; stderr:\n%s", bound, stderr.String())
			}
			took := time.Since(lost)
			out := stderr.String()
			code := cmd.ProcessState.ExitCode()
			t.Logf("broker lost -> exit %d after %v; stderr:\n%s", code, took.Round(time.Millisecond), lastLines(out, 12))
			if want := map[bool]int{false: 1, true: 130}[tc.term]; code != want {
				t.Errorf("exit %d, want %d", code, want)
			}
			if tc.term {
				// Interrupted while the read loop waited for
				// room: the rest of stdin is not counted.
				if !strings.Contains(out, "not read   the rest of the input (not counted: it is not a file) — reading stopped: interrupted") {
					t.Errorf("summary does not say reading stopped on the interrupt:\n%s", out)
				}
				return
			}
			m := regexp.MustCompile(`kpipe: (\d+) records read`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no summary:\n%s", out)
			}
			read, _ := strconv.Atoi(m[1])
			delivered := summaryCount(t, out, "delivered")
			failed := summaryCount(t, out, "failed")
			// The rest of stdin is counted for up to 1s: "at least N".
			m = regexp.MustCompile(`(?m)^  not read   (at least )?(\d+) lines`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("summary does not say how many lines were not read:\n%s", out)
			}
			notRead, _ := strconv.Atoi(m[2])
			if delivered+failed != read {
				t.Errorf("delivered %d + failed %d != read %d", delivered, failed, read)
			}
			if exact := m[1] == ""; exact && read+notRead != total || !exact && read+notRead > total {
				t.Errorf("read %d + not read %s%d does not match the %d lines of input", read, m[1], notRead, total)
			}
			if read >= total || delivered == 0 || failed == 0 {
				t.Errorf("want some records delivered before the loss, some failed, and lines left unread: read %d, delivered %d, failed %d", read, delivered, failed)
			}
			for _, want := range []string{"buffer full for 2s", "max.block.ms", "reading stopped: the brokers took no records for max_block"} {
				if !strings.Contains(out, want) {
					t.Errorf("stderr does not say %q", want)
				}
			}
			if tc.kafka != "" && !strings.Contains(out, "aborting the transaction") {
				t.Errorf("no abort reported:\n%s", out)
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// TestRunUnreadLines: a run that stops early says how many lines it left
// unread — after a line over the length limit, and with --strict — for a
// file given with --input and for stdin redirected from a file.
func TestRunUnreadLines(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	in.WriteString(`{"value":"one","topic":"t"}` + "\n")
	in.WriteString(`{"value":"two","topic":"t"}` + "\n")
	in.WriteString(`not json` + "\n")
	for range 7 {
		in.WriteString(`{"value":"x","topic":"t"}` + "\n")
	}
	in.WriteString(`{"value":"last, no newline","topic":"t"}`)
	path := writeFile(t, filepath.Join(dir, "in.jsonl"), in.String())
	r := kpipe(t, "", "", "run", "--strict", "--input", path)
	if r.code != 1 || !strings.Contains(r.stderr, "not read   8 lines — reading stopped: --strict: a line was malformed") {
		t.Errorf("--strict on a file: want exit 1 and 8 lines not read, got %s", r)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(kpipeBin, "run", "--strict")
	cmd.Stdin = f
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "not read   8 lines") {
		t.Errorf("--strict on stdin redirected from the file: want 8 lines not read, got\n%s", out)
	}

	// A line over the 64 MiB limit stops the run; the two lines after it
	// are not read, and neither is the long line itself.
	long := filepath.Join(dir, "long.jsonl")
	lf, err := os.Create(long)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(lf, `{"value":"before","topic":"t"}`)
	if _, err := lf.Write([]byte(`{"value":"` + strings.Repeat("y", 65<<20) + `"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(lf, `{"value":"after-1","topic":"t"}`)
	fmt.Fprintln(lf, `{"value":"after-2","topic":"t"}`)
	lf.Close()
	r = kpipe(t, "", "", "run", "--input", long)
	if !strings.Contains(r.stderr, "line 2: longer than") || !strings.Contains(r.stderr, "not read   3 lines — reading stopped: the input could not be read further") {
		t.Errorf("line over the limit: want it reported and 3 lines not read, got %s", r)
	}
}

// TestRunBrokerLostRealKafka is TestRunBrokerLost's idempotent case on a
// real Apache Kafka broker, in the integration step (KPIPE_TEST_BROKERS
// set). It starts a broker of its own with scripts/kafka.sh on another port,
// as the shared one must stay up for the other tests, and SIGKILLs it a
// second into a 2,000,000-line run read from a file, so that the lines not
// read are counted exactly. On a quiet machine kpipe reads 200,000 lines in
// less than that second, so the input is ten times as long.
func TestRunBrokerLostRealKafka(t *testing.T) {
	if os.Getenv("KPIPE_TEST_BROKERS") == "" {
		t.Skip("integration test: runs when KPIPE_TEST_BROKERS is set (see .ci/run), starting a broker of its own")
	}
	const (
		total    = 2_000_000
		maxBlock = 5 * time.Second
		flush    = 5 * time.Second
	)
	script, err := filepath.Abs("../../scripts/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	env := append(os.Environ(), "KPIPE_KAFKA_PORT=19392", "KPIPE_KAFKA_STATE="+state)
	kafka := func(arg string) string {
		cmd := exec.Command(script, arg)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kafka.sh %s: %v\n%s", arg, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	addr := kafka("start")
	t.Cleanup(func() { kafka("stop") })
	pidText, err := os.ReadFile(filepath.Join(state, "kafka.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}

	// The topic exists and the broker is ready before the run starts,
	// so that the run delivers records before the broker dies.
	if r := kpipe(t, "", `{"value":"warm-up"}`+"\n", "run", "--brokers", addr, "--topic", "lost"); r.code != 0 {
		t.Fatalf("warm-up run: %s", r)
	}
	dir := t.TempDir()
	var in strings.Builder
	for i := range total {
		fmt.Fprintf(&in, "{\"value\":\"record-%07d\"}\n", i)
	}
	input := writeFile(t, filepath.Join(dir, "in.jsonl"), in.String())
	cfg := writeFile(t, filepath.Join(dir, "lost.hcl"), fmt.Sprintf(`kafka {
  max_block = %q
}
pipeline "p" {
  topic = "lost"
}
`, maxBlock))
	cmd := exec.Command(kpipeBin, "run", "--config", cfg, "--brokers", addr, "--input", input, "--flush-timeout", flush.String())
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	time.Sleep(time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	bound := maxBlock + flush + 20*time.Second
	select {
	case <-done:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		t.Fatalf("run still going %v after the broker died; stderr:\n%s", bound, lastLines(stderr.String(), 30))
	}
	out := stderr.String()
	code := cmd.ProcessState.ExitCode()
	t.Logf("broker lost -> exit %d after %v; stderr:\n%s", code, time.Since(lost).Round(time.Millisecond), lastLines(out, 12))
	m := regexp.MustCompile(`kpipe: (\d+) records read`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary:\n%s", lastLines(out, 30))
	}
	read, _ := strconv.Atoi(m[1])
	delivered := summaryCount(t, out, "delivered")
	failed := summaryCount(t, out, "failed")
	if delivered+failed != read {
		t.Errorf("delivered %d + failed %d != read %d", delivered, failed, read)
	}
	if read == total {
		// The run got through the input before the broker died:
		// nothing was lost, there is nothing to check.
		t.Fatalf("the run read all %d lines within a second; the broker died too late for the test", total)
	}
	if code != 1 || delivered == 0 || failed == 0 {
		t.Errorf("exit %d, delivered %d, failed %d: want exit 1, records delivered before the broker died and failed after", code, delivered, failed)
	}
	if notRead := summaryCount(t, out, "not read"); read+notRead != total {
		t.Errorf("read %d + not read %d != %d lines of input", read, notRead, total)
	}
}
