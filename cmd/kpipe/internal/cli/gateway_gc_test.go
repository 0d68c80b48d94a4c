package cli

import (
	"runtime/debug"
	"testing"
)

// gcSettings returns the current GOGC and soft memory limit.
func gcSettings() (percent int, limit int64) {
	percent = debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// TestGatewayTuneGC: tuneGC sets GOGC and the soft memory limit from
// --memory-limit unless the environment sets them, and its restore puts
// back what was there.
func TestGatewayTuneGC(t *testing.T) {
	const memLimit = 256 << 20
	for _, c := range []struct {
		name, gogc, memlimit string
		percent              int   // -1: unchanged
		limit                int64 // -1: unchanged
	}{
		{"defaults", "", "", gatewayGCPercent, 2*memLimit + 64<<20},
		{"GOGC set", "150", "", -1, 2*memLimit + 64<<20},
		{"GOMEMLIMIT set", "", "1GiB", gatewayGCPercent, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOGC", c.gogc)
			t.Setenv("GOMEMLIMIT", c.memlimit)
			p0, l0 := gcSettings()
			restore := tuneGC(memLimit)
			p1, l1 := gcSettings()
			restore()
			p2, l2 := gcSettings()
			wantP, wantL := c.percent, c.limit
			if wantP == -1 {
				wantP = p0
			}
			if wantL == -1 {
				wantL = l0
			}
			if p1 != wantP || l1 != wantL {
				t.Errorf("GOGC %d, memory limit %d; want %d and %d", p1, l1, wantP, wantL)
			}
			if p2 != p0 || l2 != l0 {
				t.Errorf("restored GOGC %d, memory limit %d; want %d and %d", p2, l2, p0, l0)
			}
		})
	}
}
