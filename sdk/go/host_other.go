//go:build !wasip1

package kpipe

import (
	"fmt"
	"os"
)

// host stands in for the kpipe import module when the package is compiled
// for anything but wasip1, so that plugin logic can be unit-tested natively:
// there is no configuration, messages at LevelInfo and above go to standard
// error, and error messages are dropped.
var host hostAPI = nativeHost{}

type nativeHost struct{}

func (nativeHost) config([]byte) int       { return 0 }
func (nativeHost) logEnabled(l Level) bool { return l >= LevelInfo }
func (nativeHost) log(l Level, msg string) { fmt.Fprintf(os.Stderr, "kpipe plugin [%v] %s\n", l, msg) }
func (nativeHost) setError(string)         {}

// enableFeatures enables nothing: natively there is no host to encode less.
func (nativeHost) enableFeatures(uint64) uint64 { return 0 }

// addressOf stands in for the address of b in the module's memory, which
// exists only under wasip1. It is 0, so that natively the records a batch
// hook returns are named by their offsets in the runtime's arena, which is
// what the tests check.
func addressOf([]byte) uint32 { return 0 }
