// Package kafkaping asks a franz-go client's seed brokers whether one
// answers, bounded by a context: the one check that kpipe's producers,
// sources and consumers make before they start.
package kafkaping

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Ping is cl.Ping bounded by ctx. The client waits for a request it wrote
// to be answered or to time out (its request timeout, seconds) even after
// ctx ended, so a seed broker that accepts connections and never answers
// would hold a start, and an interrupted command, that long. Ping returns
// when ctx ends; the abandoned cl.Ping returns once the caller closes cl.
func Ping(ctx context.Context, cl *kgo.Client) error {
	done := make(chan error, 1)
	go func() { done <- cl.Ping(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
