package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startSilentBroker listens on a loopback port, accepts every connection and
// never answers: a broker that swallows requests. It returns the address and
// a channel that gets a value at the first accepted connection.
func startSilentBroker(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			once.Do(func() { close(accepted) })
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// TestInterruptSilentBroker sends SIGINT to each command that connects to
// Kafka while it waits for a seed broker that accepted the connection and
// never answers: it must exit 130 within a few seconds, not when the
// client's request times out.
func TestInterruptSilentBroker(t *testing.T) {
	const bound = 3 * time.Second
	tests := []struct {
		name string
		// config is the configuration file, with %[1]s for the broker's
		// address; args get --config FILE when it is set.
		config string
		args   []string
	}{
		{name: "run", args: []string{"run", "--topic", "t", "--format", "raw"}},
		{name: "consume", args: []string{"consume", "--topic", "t"}},
		{name: "consume --config", args: []string{"consume"}, config: `
kafka { brokers = ["%[1]s"] }
consumer "c" { topics = ["t"] }
`},
		{name: "run source", args: []string{"run"}, config: `
kafka { brokers = ["%[1]s"] }
pipeline "p" {
  topic = "out"
  source "kafka" {
    topics = ["in"]
    group  = "g"
  }
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, accepted := startSilentBroker(t)
			args := tt.args
			if tt.config != "" {
				path := filepath.Join(t.TempDir(), "kpipe.hcl")
				if err := os.WriteFile(path, []byte(fmt.Sprintf(tt.config, addr)), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			} else {
				args = append(args, "--brokers", addr)
			}
			cmd := exec.Command(kpipeBin, args...)
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-accepted:
			case err := <-done:
				t.Fatalf("kpipe ended before connecting: %v\n%s%s", err, stdout.String(), stderr.String())
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("kpipe did not connect to the silent broker within 30s\n%s", stderr.String())
			}
			// Let the client write its first request and wait for the answer.
			select {
			case err := <-done:
				t.Fatalf("kpipe ended before the signal: %v\n%s%s", err, stdout.String(), stderr.String())
			case <-time.After(500 * time.Millisecond):
			}
			interrupted(t, cmd, done, syscall.SIGINT, bound, &stderr)
		})
	}
}
