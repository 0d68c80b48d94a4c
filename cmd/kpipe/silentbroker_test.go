package main

import (
	"net"
	"os/exec"
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

// TestInterruptSilentBroker sends SIGINT to run while it waits for a seed
// broker that accepted the connection and never answers: run must exit 130
// within a few seconds, not when the client's request times out.
func TestInterruptSilentBroker(t *testing.T) {
	const bound = 3 * time.Second
	addr, accepted := startSilentBroker(t)
	cmd := exec.Command(kpipeBin, "run", "--brokers", addr, "--topic", "t", "--format", "raw")
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
}
