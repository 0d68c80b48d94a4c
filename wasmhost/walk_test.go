package wasmhost_test

import (
	"io/fs"
	"path/filepath"
)

// walk calls found for every regular file under dir.
func walk(dir string, found func()) error {
	return filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			found()
		}
		return err
	})
}
