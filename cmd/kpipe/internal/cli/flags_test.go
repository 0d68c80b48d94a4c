package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAddressFlags checks that every address flag is a usage error (exit
// 2) when it cannot be an address, and so is a number or duration flag out
// of its range, before the command starts anything, as docs/cli.md promises: a port over 65535 on --admin, or on the gateway's
// --listen and --brokers, was found only when kpipe listened or dialled
// (exit 3, after an embedded broker had started); ":9092", which the
// configuration file refuses, dialled this machine; and "," started an
// embedded broker as if no --brokers had been given.
func TestAddressFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--admin", "localhost:99999"}, `--admin: admin address "localhost:99999": want HOST:PORT with a port from 0 to 65535`},
		{[]string{"run", "--admin", "127.0.0.1:-1"}, `want HOST:PORT with a port from 0 to 65535`},
		{[]string{"run", "--brokers", ":9092"}, `--brokers ":9092": want HOST:PORT with a port from 1 to 65535`},
		{[]string{"run", "--brokers", ","}, `--brokers ",": no broker address (want HOST:PORT[,HOST:PORT...])`},
		{[]string{"consume", "--brokers", ":9092", "--topic", "t"}, `--brokers ":9092": want HOST:PORT`},
		{[]string{"gateway", "--brokers", "localhost:99999"}, `--brokers "localhost:99999": want HOST:PORT with a port from 1 to 65535`},
		{[]string{"gateway", "--brokers", " , "}, `--brokers " , ": no broker address`},
		{[]string{"gateway", "--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999": want HOST:PORT with a port from 0 to 65535`},
		{[]string{"gateway", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:70000"}, `--admin: admin address "127.0.0.1:70000": want HOST:PORT with a port from 0 to 65535`},
		// The gateway's number and duration flags too: these were taken
		// (a negative node id as "derive one", a negative count as 1, a
		// negative or zero timeout as no wait).
		{[]string{"gateway", "--node-id", "-7"}, `invalid argument "-7" for "--node-id" flag: want a whole number from -1 to 2147483647`},
		{[]string{"gateway", "--forward-min-records", "-3"}, `invalid argument "-3" for "--forward-min-records" flag: want a whole number from 1 to 2147483647`},
		{[]string{"gateway", "--shutdown-timeout", "-1s"}, `invalid argument "-1s" for "--shutdown-timeout" flag: must not be negative`},
		{[]string{"gateway", "--shutdown-timeout", "0s"}, `invalid argument "0s" for "--shutdown-timeout" flag: must be longer than zero`},
		{[]string{"broker", "--topic", "t:100000000"}, `--topic: topic "t:100000000": partition count must be a whole number from 1 to 10000`},
	} {
		// Bounded: a gateway that took a bad flag for none would serve
		// until its context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var stdout, stderr strings.Builder
		code := Main(ctx, tt.args, strings.NewReader(""), &stdout, &stderr)
		cancel()
		if code != ExitUsage || !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), "embedded") {
			t.Errorf("kpipe %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, stderr.String(), ExitUsage, tt.want)
		}
	}
}

// TestUnknownFlagSuggestion checks that an unknown flag of any command is a
// usage error (exit 2) that suggests the command's closest flag, inherited
// ones included, and suggests nothing when no flag is close.
func TestUnknownFlagSuggestion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--brokr", "x"}, "unknown flag: --brokr (did you mean --brokers?)"},
		{[]string{"run", "--brokr=x"}, "unknown flag: --brokr (did you mean --brokers?)"},
		{[]string{"run", "-brokers", "x"}, "unknown shorthand flag: 'b' in -brokers (did you mean --brokers?)"},
		{[]string{"run", "--flush-timout", "1s"}, "(did you mean --flush-timeout?)"},
		{[]string{"run", "--log-levl", "debug"}, "(did you mean --log-level?)"}, // a persistent flag of the root
		{[]string{"validate", "--confg", "x"}, "(did you mean --config?)"},
		{[]string{"consume", "--from-begining"}, "(did you mean --from-beginning?)"},
		{[]string{"gateway", "--listn", "x"}, "(did you mean --listen?)"},
		{[]string{"broker", "--topics", "t"}, "(did you mean --topic?)"},
		{[]string{"plugin", "test", "x.wasm", "--inptu", "-"}, "(did you mean --input?)"},
		{[]string{"plugin", "inspect", "x.wasm", "--load-timeot", "1s"}, "(did you mean --load-timeout?)"},
		{[]string{"plugin", "conformance", "x.wasm", "--partition", "3"}, "(did you mean --partitions?)"},
	} {
		var stdout, stderr strings.Builder
		code := Main(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != ExitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("kpipe %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, stderr.String(), ExitUsage, tt.want)
		}
	}
	for _, args := range [][]string{{"run", "--verbose"}, {"run", "-x"}, {"plugin", "test", "x.wasm", "--brokers", "b:1"}} {
		var stdout, stderr strings.Builder
		code := Main(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code != ExitUsage || !strings.Contains(stderr.String(), "unknown") || strings.Contains(stderr.String(), "did you mean") {
			t.Errorf("kpipe %s: exit %d, stderr %q; want %d, an unknown flag and no suggestion", strings.Join(args, " "), code, stderr.String(), ExitUsage)
		}
	}
}

// TestUsageHint checks that a usage error ends with the help command of the
// command that was run, and that the plugin commands name their missing or
// extra module arguments.
func TestUsageHint(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"nosuch"}, []string{`unknown command "nosuch"`, "Run 'kpipe --help' for usage."}},
		{[]string{"run", "--brokr", "x"}, []string{"Run 'kpipe run --help' for usage."}},
		{[]string{"gateway", "--pprof"}, []string{"--pprof needs --admin", "Run 'kpipe gateway --help' for usage."}},
		{[]string{"plugin", "test"}, []string{"kpipe plugin test needs the module to use: kpipe plugin test MODULE.wasm", "Run 'kpipe plugin test --help' for usage."}},
		{[]string{"plugin", "inspect", "a.wasm", "b.wasm"}, []string{"kpipe plugin inspect takes one module, got 2 arguments: a.wasm b.wasm", "Run 'kpipe plugin inspect --help'"}},
		{[]string{"plugin", "conformance"}, []string{"kpipe plugin conformance needs the module to use", "Run 'kpipe plugin conformance --help'"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var stdout, stderr strings.Builder
		code := Main(ctx, tt.args, strings.NewReader(""), &stdout, &stderr)
		cancel()
		for _, want := range tt.want {
			if code != ExitUsage || !strings.Contains(stderr.String(), want) {
				t.Errorf("kpipe %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, stderr.String(), ExitUsage, want)
			}
		}
	}
}
