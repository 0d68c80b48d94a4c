//go:build !(linux || darwin)

package wasmhost

// mapMemory returns nil: guest memory is a Go slice on this platform.
func mapMemory(uint64) []byte { return nil }

// unmapMemory is never called: mapMemory maps nothing.
func unmapMemory([]byte) {}
