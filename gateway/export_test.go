package gateway

import "time"

// SetBodyTimeout sets how long the rest of a request may take to arrive
// and returns a function that restores it.
func SetBodyTimeout(d time.Duration) (restore func()) {
	old := bodyTimeout
	bodyTimeout = d
	return func() { bodyTimeout = old }
}

// SetIdleTimeout sets how long a connection may send nothing and returns a
// function that restores it.
func SetIdleTimeout(d time.Duration) (restore func()) {
	old := idleTimeout
	idleTimeout = d
	return func() { idleTimeout = old }
}

// SetBufferIdle sets how long a connection may send nothing before its
// read buffer is given back, and returns a function that restores it.
func SetBufferIdle(d time.Duration) (restore func()) {
	old := bufferIdle
	bufferIdle = d
	return func() { bufferIdle = old }
}

// SetWriteStall sets how long a response's write may make no progress
// while requests wait for memory, and returns a function that restores it.
func SetWriteStall(d time.Duration) (restore func()) {
	old := writeStall
	writeStall = d
	return func() { writeStall = old }
}
