package config

import (
	"fmt"

	"github.com/kpipe/kpipe/pipeline"
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

// builtinNames returns the names of the built-in plugins of kind.
func builtinNames(kind plugins.Kind) []string {
	switch kind {
	case plugins.KindSerializer:
		return plugins.BuiltinSerializers()
	case plugins.KindPartitioner:
		return plugins.BuiltinPartitioners()
	}
	return nil
}

// failurePolicies returns the names of the on_failure policies a plugin of
// kind may have (pipeline.CheckFailurePolicy).
func failurePolicies(kind plugins.Kind) []string {
	var names []string
	for _, f := range []pipeline.FailurePolicy{pipeline.SkipPlugin, pipeline.UseDefaultPartitioner, pipeline.FailRecord, pipeline.DropRecord} {
		if pipeline.CheckFailurePolicy(kind, f) == nil {
			names = append(names, f.String())
		}
	}
	return names
}
