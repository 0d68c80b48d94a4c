package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/kpipe/kpipe/wasmhost"
)

// fileSHA256 returns the SHA-256 of the file at path in lower-case hex.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loadModule loads p's module as p.Kind with p's limits and config. The file
// is read once, and what is loaded is what was hashed: a module that no
// longer has the hash Parse saw (it was replaced in between), or that
// differs from the block's pin, is refused.
func loadModule(ctx context.Context, host *wasmhost.Host, p *Plugin) (*wasmhost.Plugin, error) {
	wasm, err := os.ReadFile(p.Module)
	if err != nil {
		return nil, fmt.Errorf("load plugin %q: %w", p.Name, err)
	}
	sum := sha256.Sum256(wasm)
	got := hex.EncodeToString(sum[:])
	switch {
	case p.PinnedSHA256 != "" && got != p.PinnedSHA256:
		return nil, fmt.Errorf("plugin %q: %s has SHA-256 %s, but the block pins %s", p.Name, p.Module, got, p.PinnedSHA256)
	case p.ModuleSHA256 != "" && got != p.ModuleSHA256:
		return nil, fmt.Errorf("plugin %q: %s changed after the configuration was read (SHA-256 %s, then %s); load it again", p.Name, p.Module, p.ModuleSHA256, got)
	}
	return host.Load(ctx, p.Name, wasm, p.Kind, append(p.loadOptions(), wasmhost.WithFile(p.Module))...)
}
