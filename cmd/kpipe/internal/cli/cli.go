package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kpipe/kpipe/internal/suggest"
	"github.com/kpipe/kpipe/wasmhost"
)

// Exit codes of the kpipe command.
const (
	// ExitOK: everything worked.
	ExitOK = 0
	// ExitFailed: some records failed or were malformed (run), the
	// configuration is invalid or one of its plugins does not load
	// (validate, run), a plugin does not load or a hook faulted (plugin
	// inspect, plugin test), or fewer records than --max arrived (consume).
	ExitFailed = 1
	// ExitUsage: wrong command line (unknown flag, missing argument, bad
	// flag value).
	ExitUsage = 2
	// ExitError: kpipe could not do its work at all: a file could not be
	// read, no broker answered, the embedded broker could not start.
	ExitError = 3
	// ExitInterrupted: stopped by SIGINT or SIGTERM before the command
	// finished (run: records already sent were flushed first), or by a
	// second signal at once, whatever the command was doing.
	ExitInterrupted = 130
)

// exitError carries an exit code up to Main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

func failedf(format string, args ...any) error {
	return &exitError{code: ExitFailed, err: fmt.Errorf(format, args...)}
}

// silentExit ends the command with code after it already reported why.
func silentExit(code int) error { return &exitError{code: code} }

// env is what a command needs from the process, so tests can run commands
// in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// stderrIsTerminal enables the progress bar of run.
	stderrIsTerminal bool
	// secondSignalOwned is set by a command that handles a second SIGINT
	// or SIGTERM itself (run: it stops waiting and prints its summary);
	// otherwise the second one ends the process at once.
	secondSignalOwned atomic.Bool

	logLevel  string
	logFormat string
	log       hclog.Logger
	logOut    *heldWriter // the log's output, stderr
	// wasmCache is --wasm-cache: a directory, "off", or empty for the
	// default (kpipe/wazero under the user's cache directory).
	wasmCache string
}

// Main runs the kpipe command with args (without the program name) and
// returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, logOut: &heldWriter{w: stderr}}
	if f, ok := stderr.(*os.File); ok {
		e.stderrIsTerminal = isTerminal(f)
	}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	sigCtx, stop := notifyContext(ctx, stderr, e.secondSignalOwned.Load)
	defer stop()
	cmd, err := root.ExecuteContextC(sigCtx)
	if err == nil {
		return ExitOK
	}
	// A usage error points at the help of the command that was run.
	if cmd == nil {
		cmd = root
	}
	usageHint := fmt.Sprintf("Run '%s --help' for usage.\n", cmd.CommandPath())
	var ee *exitError
	if sigCtx.Err() != nil && ctx.Err() == nil && !(errors.As(err, &ee) && ee.code == ExitInterrupted) {
		// A signal stopped the command (loading a plugin, checking a
		// configuration, waiting for a broker): whatever error that
		// caused is the interruption's.
		fmt.Fprintf(stderr, "kpipe: interrupted: %s\n", err)
		return ExitInterrupted
	}
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "kpipe: %s\n", ee.err)
		}
		if ee.code == ExitUsage {
			fmt.Fprint(stderr, usageHint)
		}
		return ee.code
	}
	// Cobra's own errors (unknown command, missing argument) are usage
	// errors; everything else returned by a command is an error.
	msg := err.Error()
	fmt.Fprintf(stderr, "kpipe: %s\n", msg)
	if isCobraUsageError(msg) {
		fmt.Fprint(stderr, usageHint)
		return ExitUsage
	}
	return ExitError
}

// notifyContext returns a context that is cancelled at the first SIGINT or
// SIGTERM, so that every command stops what it does and ends with
// ExitInterrupted. The first signal is acknowledged on stderr at once, so
// that a user whose command is busy (compiling a large module, flushing)
// knows it was heard. A second signal ends the process at once with
// ExitInterrupted, without waiting for the command, unless owned() says the
// command handles it (run does: it ends its waits at once and still prints
// its summary; both handlers receive every signal).
func notifyContext(ctx context.Context, stderr io.Writer, owned func() bool) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "kpipe: %v: stopping; press Ctrl-C again to exit at once\n", sig)
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			if owned() {
				return
			}
			fmt.Fprintf(stderr, "kpipe: %v again: exiting at once\n", sig)
			os.Exit(ExitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// suggestFlag adds to the error of an unknown flag the closest flag of cmd,
// if one is close: --brokr or -brokers (pflag reads it as the shorthands
// b, r, o, ...) for --brokers.
func suggestFlag(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return err
	}
	name := ne.GetSpecifiedName()
	if sh := ne.GetSpecifiedShortnames(); sh != "" {
		name, _, _ = strings.Cut(sh, "=")
		if len(name) < 2 {
			return err
		}
	}
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	if c := suggest.Closest(name, names); c != "" {
		return fmt.Errorf("%w (did you mean --%s?)", err, c)
	}
	return err
}

func isCobraUsageError(msg string) bool {
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag",
		"accepts ", "requires at least", "requires at most", "requires exactly",
		"required flag", "invalid argument", "flag needs an argument", "bad flag syntax"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "kpipe",
		Short: "Produce to Kafka through a pipeline of WebAssembly plugins",
		Long: `kpipe produces records to Kafka through a programmable pipeline: interceptors,
serializers and partitioners written as WebAssembly plugins (or built in), configured
in an HCL file. A broken plugin never stops the stream.

Exit codes: 0 ok; 1 records failed or the configuration is invalid; 2 usage error;
3 kpipe could not work (file, plugin load, broker); 130 interrupted (SIGINT or
SIGTERM; a second one exits at once).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return e.setupLogger()
		},
	}
	// Every command's flag errors come here (cobra asks the parents):
	// usage errors, with a suggestion for an unknown flag.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: suggestFlag(cmd, err)}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&e.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error or off")
	pf.StringVar(&e.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&e.wasmCache, "wasm-cache", os.Getenv("KPIPE_WASM_CACHE"),
		"directory of the compiled-plugin cache, or \"off\" (default: kpipe/wazero in the user's cache directory; env KPIPE_WASM_CACHE)")

	root.AddCommand(
		newRunCmd(e),
		newValidateCmd(e),
		newBrokerCmd(e),
		newConsumeCmd(e),
		newPluginCmd(e),
		newGatewayCmd(e),
	)
	return root
}

func (e *env) setupLogger() error {
	level := hclog.LevelFromString(e.logLevel)
	if level == hclog.NoLevel {
		return usageErrorf("--log-level %q: want trace, debug, info, warn, error or off", e.logLevel)
	}
	var json bool
	switch e.logFormat {
	case "text":
	case "json":
		json = true
	default:
		return usageErrorf("--log-format %q: want text or json", e.logFormat)
	}
	e.log = hclog.New(&hclog.LoggerOptions{
		Name:       "kpipe",
		Level:      level,
		Output:     e.logOut,
		JSONFormat: json,
	})
	return nil
}

// newHost starts the WASM host every command that loads plugins uses, with
// the compilation cache chosen by --wasm-cache.
func (e *env) newHost(ctx context.Context) (*wasmhost.Host, error) {
	opts := []wasmhost.HostOption{wasmhost.WithLogger(e.log.Named("plugin"))}
	switch e.wasmCache {
	case "":
	case "off":
		opts = append(opts, wasmhost.WithoutCompilationCache())
	default:
		opts = append(opts, wasmhost.WithCompilationCacheDir(e.wasmCache))
	}
	return wasmhost.New(ctx, opts...)
}

// closeHost closes the WASM host at the end of a command. It waits at most
// hostCloseWait for hook calls still in flight and for a compilation that a
// stopped load left running (a module of tens of MiB compiles for tens of
// seconds, and compilation cannot be interrupted), and not at all once ctx,
// the command's context, ended (interrupted): the process is about to exit,
// and what they would finish is of no use to it.
func closeHost(ctx context.Context, host *wasmhost.Host) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostCloseWait)
	defer cancel()
	if ctx.Err() != nil {
		cancel()
	}
	_ = host.Close(cctx)
}

// hostCloseWait bounds closeHost.
const hostCloseWait = time.Second

// say prints a message for the user on stderr.
func (e *env) say(format string, args ...any) {
	fmt.Fprintf(e.stderr, "kpipe: "+format+"\n", args...)
}

// secondSignal takes over the second SIGINT or SIGTERM for a command whose
// first one (ctx) starts a shutdown that still waits (flush, abort,
// close). The returned context, not cancelled by ctx, ends at the second
// signal, after msg is said, or when stop is called; the caller defers
// stop, which also gives the signals back.
func (e *env) secondSignal(ctx context.Context, msg string) (context.Context, context.CancelFunc) {
	endCtx, end := context.WithCancel(context.WithoutCancel(ctx))
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	e.secondSignalOwned.Store(true)
	go func() {
		for n := 0; ; {
			select {
			case <-sig:
				if n++; n == 2 {
					e.say("%s", msg)
					end()
					return
				}
			case <-endCtx.Done():
				return
			}
		}
	}()
	return endCtx, func() { end(); signal.Stop(sig) }
}
