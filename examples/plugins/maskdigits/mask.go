package main

import (
	"fmt"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

// config is the plugin's JSON configuration.
type config struct {
	KeepLast   int    `json:"keep_last"`
	DropHeader string `json:"drop_header"`
}

// masker masks digits in consumed values.
type masker struct {
	keepLast   int
	dropHeader string
}

func newMasker(cfg config) (masker, error) {
	if cfg.KeepLast < 0 {
		return masker{}, fmt.Errorf("keep_last is %d, want 0 or more", cfg.KeepLast)
	}
	return masker{keepLast: cfg.KeepLast, dropHeader: cfg.DropHeader}, nil
}

// OnConsume drops a record with the drop header, and masks the value of the
// others in place: the value points into the input buffer, which the
// plugin may change, so masking allocates nothing.
func (m *masker) OnConsume(r *kpipe.ConsumedRecord) (kpipe.Action, error) {
	if m.dropHeader != "" {
		for _, h := range r.Headers {
			if h.Key == m.dropHeader {
				return kpipe.Drop, nil
			}
		}
	}
	if !m.mask(r.Value) {
		return kpipe.Unchanged, nil
	}
	return kpipe.Changed, nil
}

// mask replaces the digits of v with '*', keeping the last keepLast of each
// run of digits, and reports whether it replaced any.
func (m *masker) mask(v []byte) bool {
	changed := false
	for i := 0; i < len(v); {
		if v[i] < '0' || v[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		for k := i; k < j-m.keepLast; k++ {
			v[k], changed = '*', true
		}
		i = j
	}
	return changed
}
