package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/kpipe/kpipe/pipeline"
)

// startProfiles starts the --cpuprofile and --memprofile of run and gateway
// (see openProfiles) and returns the function that ends them, which reports
// a profile it could not write on stderr. An error is a failed command.
func (e *env) startProfiles(cpuFile, memFile string) (stop func(), err error) {
	end, err := openProfiles(cpuFile, memFile)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	return func() {
		if err := end(); err != nil {
			e.say("%v", err)
		}
	}, nil
}

// openProfiles starts writing a CPU profile to cpuFile, if it is not empty,
// and returns the function that stops it and writes the allocation profile
// to memFile, if that is not empty. The files are created first, so that a
// path that cannot be written fails the command before it reads anything.
func openProfiles(cpuFile, memFile string) (stop func() error, err error) {
	var cpu, mem *os.File
	closeAll := func() {
		for _, f := range []*os.File{cpu, mem} {
			if f != nil {
				f.Close()
			}
		}
	}
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			closeAll()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	if memFile != "" {
		if mem, err = os.Create(memFile); err != nil {
			if cpu != nil {
				pprof.StopCPUProfile()
			}
			closeAll()
			return nil, fmt.Errorf("--memprofile: %w", err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				errs = append(errs, fmt.Errorf("--cpuprofile: %w", err))
			}
		}
		if mem != nil {
			runtime.GC() // the heap profile is as of the last collection
			if err := pprof.Lookup("allocs").WriteTo(mem, 0); err != nil {
				errs = append(errs, fmt.Errorf("--memprofile: %w", err))
			}
			if err := mem.Close(); err != nil {
				errs = append(errs, fmt.Errorf("--memprofile: %w", err))
			}
		}
		return errors.Join(errs...)
	}, nil
}

// printPluginTimes writes, per plugin and hook, the mean time per record and
// the estimated total (mean × records), from the pipeline's sampled call
// durations (pipeline.PluginStats.MeanLatency).
func printPluginTimes(w io.Writer, st pipeline.Stats) {
	if len(st.Plugins) == 0 {
		return
	}
	fmt.Fprintln(w, "  plugin time (sampled, one call in 64):")
	for _, p := range st.Plugins {
		total := time.Duration(p.Calls) * p.MeanLatency
		fmt.Fprintf(w, "    %-24s %-16s %v per record, %v in all\n", p.Name, p.Hook, p.MeanLatency, total.Round(time.Millisecond))
	}
}
