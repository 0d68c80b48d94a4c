package cli

import (
	"runtime/debug"
	"testing"

	"github.com/hashicorp/go-hclog"
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

// TestRunGC: kpipe run raises GOGC until the heap may gather
// runHeapHeadroom of garbage over what is live, within [100,
// runMaxGCPercent], and bounds it where the default GOGC would put a full
// buffer; without a byte limit on the buffer it changes nothing.
func TestRunGC(t *testing.T) {
	const buf = 32 << 20
	for _, c := range []struct {
		name           string
		live, buffered int64
		percent        int
		limit          int64
	}{
		{"small heap", 8 << 20, buf, runMaxGCPercent, 2*(8<<20+buf) + 64<<20},
		{"unknown heap", 0, buf, runMaxGCPercent, 2*buf + 64<<20},
		{"Go plugins", 36 << 20, buf, 100, 2*(36<<20+buf) + 64<<20},
		{"medium heap", 16 << 20, buf, 200, 2*(16<<20+buf) + 64<<20},
		{"large heap", 200 << 20, buf, 100, 2*(200<<20+buf) + 64<<20},
		{"no byte limit", 8 << 20, 0, -1, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, l := runGC(c.live, c.buffered)
			if p != c.percent || l != c.limit {
				t.Errorf("runGC(%d, %d) = %d, %d; want %d, %d", c.live, c.buffered, p, l, c.percent, c.limit)
			}
		})
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	p0, l0 := gcSettings()
	restore := (&env{log: hclog.NewNullLogger()}).tuneRunGC(buf)
	p1, l1 := gcSettings()
	restore()
	if p2, l2 := gcSettings(); p2 != p0 || l2 != l0 {
		t.Errorf("restored GOGC %d, memory limit %d; want %d and %d", p2, l2, p0, l0)
	}
	if p1 < 100 || p1 > runMaxGCPercent || l1 < 2*buf+64<<20 {
		t.Errorf("tuneRunGC set GOGC %d, memory limit %d", p1, l1)
	}
}
