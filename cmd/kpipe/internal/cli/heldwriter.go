package cli

import (
	"fmt"
	"io"
	"sync"
)

// maxHeld bounds what a heldWriter keeps while it holds; the rest is counted.
const maxHeld = 1 << 20

// heldWriter is the log's output. It passes writes through, except between
// hold and release, when it keeps them (up to maxHeld bytes): run holds the
// log while it loads its plugins, so that what a plugin that fails to load
// wrote is not printed before, and besides, the diagnostic that says why.
type heldWriter struct {
	mu      sync.Mutex
	w       io.Writer
	holding bool
	held    []byte
	dropped int
}

func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.holding {
		return h.w.Write(p)
	}
	if room := maxHeld - len(h.held); len(p) > room {
		h.held = append(h.held, p[:max(room, 0)]...)
		h.dropped += len(p) - max(room, 0)
	} else {
		h.held = append(h.held, p...)
	}
	return len(p), nil
}

func (h *heldWriter) hold() {
	h.mu.Lock()
	h.holding = true
	h.mu.Unlock()
}

// release writes what was held, unless discard, and passes writes through
// again.
func (h *heldWriter) release(discard bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !discard {
		_, _ = h.w.Write(h.held)
		if h.dropped > 0 {
			fmt.Fprintf(h.w, "kpipe: %d more bytes of log output while loading the plugins were not kept\n", h.dropped)
		}
	}
	h.holding, h.held, h.dropped = false, nil, 0
}
