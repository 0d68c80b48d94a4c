package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
)

// TestConsumeConfig runs kpipe consume --config on the embedded broker with
// the filtering and the masking example plugins (examples/plugins/wat),
// under each failure policy of the filter: every record read is printed,
// filtered or failed, and the summary says how many of each.
func TestConsumeConfig(t *testing.T) {
	addr := startBroker(t)
	values := []string{"card 4111-1111-1111-1111", "#internal 99", "?refuse 12", "!crash 34", "plain", "pin 0000"}
	var in strings.Builder
	for i, v := range values {
		fmt.Fprintf(&in, "{\"key\":\"k%d\",\"value\":%q}\n", i, v)
	}
	if r := kpipe(t, "", in.String(), "run", "--brokers", addr, "--topic", "payments"); r.code != 0 {
		t.Fatalf("producing: %s", r)
	}
	filter := plugintest.WAT(t, "examples/plugins/wat/filter.wasm")
	mask := plugintest.WAT(t, "examples/plugins/wat/mask.wasm")
	tests := []struct {
		policy        string
		code          int
		printed       []string
		failed        int
		summaryCounts string
	}{
		{"skip", 0, []string{"card ****-****-****-****", "?refuse **", "!crash **", "plain", "pin ****"}, 0, "5 delivered, 1 filtered, 0 failed"},
		{"fail", 1, []string{"card ****-****-****-****", "plain", "pin ****"}, 2, "3 delivered, 1 filtered, 2 failed"},
		{"drop", 0, []string{"card ****-****-****-****", "plain", "pin ****"}, 0, "3 delivered, 3 filtered, 0 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeFile(t, filepath.Join(dir, "consume.hcl"), fmt.Sprintf(`kafka { brokers = [%q] }

consumer "payments" {
  topics = ["payments"]
  start  = "earliest"

  interceptor "filter" {
    module     = %q
    on_failure = %q
  }
  interceptor "mask" { module = %q }
}
`, addr, filter, tt.policy, mask))
			r := kpipe(t, "", "", "consume", "--config", cfg, "--max", fmt.Sprint(len(values)), "--timeout", testbroker.Timeout().String())
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tt.code, r)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				var c consumed
				if err := json.Unmarshal([]byte(line), &c); err != nil || c.Value == nil {
					t.Fatalf("line %q: %v", line, err)
				}
				if c.Topic != "payments" || c.Key == nil || !strings.HasPrefix(*c.Key, "k") {
					t.Errorf("record %+v: topic or key changed", c)
				}
				got = append(got, *c.Value)
			}
			// The keyed records are spread over the topic's
			// partitions: their order across partitions is not kept.
			slices.Sort(got)
			slices.Sort(tt.printed)
			if fmt.Sprint(got) != fmt.Sprint(tt.printed) {
				t.Errorf("printed %q, want %q", got, tt.printed)
			}
			if n := strings.Count(r.stderr, "kpipe: record payments["); n != tt.failed {
				t.Errorf("%d failure lines on stderr, want %d\n%s", n, tt.failed, r.stderr)
			}
			if tt.failed > 0 {
				for _, want := range []string{`"filter"`, "kpipe_on_consume", "refused by filter", "fault (trap)"} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("stderr does not say %q\n%s", want, r.stderr)
					}
				}
			}
			if want := fmt.Sprintf("consumer payments: %d records read: %s", len(values), tt.summaryCounts); !strings.Contains(r.stderr, want) {
				t.Errorf("stderr has no %q\n%s", want, r.stderr)
			}
		})
	}

	t.Run("validate", func(t *testing.T) {
		dir := t.TempDir()
		cfg := writeFile(t, filepath.Join(dir, "consume.hcl"), fmt.Sprintf(`consumer "c" {
  interceptor "filter" { module = %q }
  interceptor "mask" { module = %q }
}
`, filter, mask))
		if r := kpipe(t, "", "", "validate", "--config", cfg); r.code != 0 || !strings.Contains(r.stdout, "OK (0 pipelines, 1 consumers, 2 plugins)") {
			t.Errorf("validate: %s", r)
		}
		// A producer-side module in a consumer block: reported at its module attribute.
		noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
		writeFile(t, cfg, fmt.Sprintf("consumer \"c\" {\n  interceptor \"n\" { module = %q }\n}\n", noop))
		r := kpipe(t, "", "", "validate", "--config", cfg)
		if r.code != 1 || !strings.Contains(r.stderr, cfg+":2:30: error: Cannot load module") || !strings.Contains(r.stderr, "loaded as consume interceptor") {
			t.Errorf("validate of an interceptor in a consumer block: %s", r)
		}
	})

	// A value deserializer (the wire-format prefix stripper of
	// wasmhost/testdata/consume.wat) before the mask, in a consumer group
	// whose offsets a second run starts from.
	t.Run("deserializer and group", func(t *testing.T) {
		framed := func(s string) string {
			return base64.StdEncoding.EncodeToString(append([]byte{0, 0, 0, 0, 7}, s...))
		}
		in := fmt.Sprintf("{\"key\":\"a\",\"value_base64\":%q}\n{\"key\":\"b\",\"value\":\"plain 1\"}\n{\"key\":\"c\",\"value_base64\":%q}\n",
			framed("card 1234"), framed("x"))
		if r := kpipe(t, "", in, "run", "--brokers", addr, "--topic", "framed"); r.code != 0 {
			t.Fatalf("producing: %s", r)
		}
		dir := t.TempDir()
		cfg := writeFile(t, filepath.Join(dir, "consume.hcl"), fmt.Sprintf(`kafka { brokers = [%q] }
consumer "framed" {
  topics = ["framed"]
  group  = "readers"
  start  = "earliest"
  value_deserializer {
    module     = %q
    on_failure = "drop"
  }
  interceptor "mask" { module = %q }
}
`, addr, plugintest.WAT(t, "wasmhost/testdata/consume.wat"), mask))
		r := kpipe(t, "", "", "consume", "--config", cfg, "--max", "3", "--timeout", testbroker.Timeout().String())
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var c consumed
			if err := json.Unmarshal([]byte(line), &c); err != nil || c.Value == nil {
				t.Fatalf("line %q: %v\n%s", line, err, r)
			}
			got = append(got, *c.Value)
		}
		slices.Sort(got)
		if r.code != 0 || fmt.Sprint(got) != "[card **** x]" || !strings.Contains(r.stderr, "3 records read: 2 delivered, 1 filtered, 0 failed") {
			t.Fatalf("want exit 0, values [card **** x] and the third filtered, got %q\n%s", got, r)
		}
		// The group committed what the first run read: nothing is left.
		r = kpipe(t, "", "", "consume", "--config", cfg, "--timeout", "3s")
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "0 records read") {
			t.Errorf("second run of the group: %s", r)
		}
	})

	t.Run("plugin test", func(t *testing.T) {
		in := "{\"key\":\"a\",\"value\":\"card 1234\"}\n{\"value\":\"#hidden\"}\n{\"value\":\"!boom\"}\n"
		r := kpipe(t, "", in, "plugin", "test", filter, "--input", "-")
		for _, want := range []string{"on_consume:      continue, unchanged (offset 0)", "on_consume:      drop", "on_consume:      FAULT (trap)"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("plugin test filter: no %q\n%s", want, r)
			}
		}
		if r.code != 1 {
			t.Errorf("plugin test filter: exit %d, want 1 (a hook faulted)", r.code)
		}
		r = kpipe(t, "", in, "plugin", "test", mask, "--input", "-", "--kind", "consume-interceptor")
		if r.code != 0 || !strings.Contains(r.stdout, `on_consume:      continue, now topic="test" key="a" value="card ****" partition=0`) {
			t.Errorf("plugin test mask: %s", r)
		}
	})

	t.Run("config error", func(t *testing.T) {
		dir := t.TempDir()
		cfg := writeFile(t, filepath.Join(dir, "consume.hcl"), "consumer \"c\" {\n  topics = [\"payments\"]\n  start  = \"oldest\"\n}\n")
		r := kpipe(t, "", "", "consume", "--config", cfg, "--brokers", addr, "--timeout", "1s")
		if r.code != 1 || !strings.Contains(r.stderr, cfg+":3:12: error: Invalid start") {
			t.Errorf("want exit 1 and the error at FILE:3:12\n%s", r)
		}
	})

	t.Run("ctrl-c", func(t *testing.T) {
		dir := t.TempDir()
		cfg := writeFile(t, filepath.Join(dir, "consume.hcl"), fmt.Sprintf(`consumer "c" {
  topics = ["payments"]
  interceptor "mask" { module = %q }
}
`, mask))
		cmd := exec.Command(kpipeBin, "consume", "--config", cfg, "--brokers", addr)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Let it load the plugin and wait for records, then stop it as a
		// user would: like consume without --config, it ends with exit 0
		// and, with --config, its summary.
		select {
		case err := <-done:
			t.Fatalf("kpipe consume ended before the signal: %v\n%s", err, stderr.String())
		case <-time.After(3 * time.Second):
		}
		sent := time.Now()
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exit after SIGINT: %v, want 0\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("kpipe consume did not stop within 10s of SIGINT\n%s", stderr.String())
		}
		t.Logf("stopped %v after SIGINT", time.Since(sent).Round(time.Millisecond))
		if !strings.Contains(stderr.String(), "consumer c: 0 records read") {
			t.Errorf("no summary after SIGINT\n%s", stderr.String())
		}
	})
}
