package kafkaping

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPingSilentBroker pings a seed broker that accepts connections and
// never answers: Ping returns ctx's error when ctx ends, not when the
// client's request times out (seconds later).
func TestPingSilentBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	for _, tt := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			err = Ping(ctx, cl)
			if !errors.Is(err, tt.want) {
				t.Errorf("Ping: %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Ping returned %v after it started, want soon after 300ms", d)
			}
		})
	}
}
