package config

import (
	"fmt"

	"github.com/kpipe/kpipe/plugins"
)

// checkBuiltin reports whether name is a built-in plugin of the given kind
// that accepts config.
func checkBuiltin(kind plugins.Kind, name string, config []byte) error {
	switch kind {
	case plugins.KindSerializer:
		_, err := plugins.NewSerializer(name, config)
		return err
	case plugins.KindPartitioner:
		_, err := plugins.NewPartitioner(name, config)
		return err
	case plugins.KindConsumeInterceptor, plugins.KindDeserializer:
		return fmt.Errorf("there are no built-in consume-side plugins; use module = \"path/to/plugin.wasm\"")
	default:
		return fmt.Errorf("there are no built-in interceptors; use module = \"path/to/plugin.wasm\"")
	}
}
