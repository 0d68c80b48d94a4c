//go:build linux || darwin

package wasmhost

import "syscall"

// mapMemory returns size bytes of private anonymous memory, reserved but not
// committed (MAP_NORESERVE): pages become resident when first written. It
// returns nil if the mapping fails; the caller then uses the Go heap.
func mapMemory(size uint64) []byte {
	// A 32-bit process has too little address space to reserve a limit
	// per instance.
	if size == 0 || size > 1<<32 || ^uint(0)>>32 == 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return b
}

// unmapMemory releases a mapping of mapMemory.
func unmapMemory(b []byte) { _ = syscall.Munmap(b) }
