package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpipe/kpipe/config"
)

func newValidateCmd(e *env) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration file and load every plugin it names",
		Long: `Parse a configuration file, check every setting, and load every WASM module it
names as the kind its block uses it as. Nothing is sent to Kafka.

On success, validate says so on stdout and exits 0. Otherwise it prints every
problem, one per line as FILE:LINE:COL: error: MESSAGE, on stderr and exits 1.`,
		Example: `  kpipe validate --config examples/quickstart.hcl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageErrorf("validate needs --config FILE")
			}
			ctx := cmd.Context()
			host, err := e.newHost(ctx)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			defer closeHost(ctx, host)
			cfg, err := e.checkConfig(ctx, path, host)
			if err != nil {
				return err
			}
			n := 0
			for _, p := range cfg.Pipelines {
				n += len(p.Interceptors)
				for _, pl := range []*config.Plugin{p.KeySerializer, p.ValueSerializer, p.Partitioner} {
					if pl != nil {
						n++
					}
				}
			}
			consumers := ""
			if len(cfg.Consumers) > 0 {
				for _, c := range cfg.Consumers {
					n += len(c.Interceptors)
					for _, pl := range []*config.Plugin{c.KeyDeserializer, c.ValueDeserializer} {
						if pl != nil {
							n++
						}
					}
				}
				consumers = fmt.Sprintf(", %d consumers", len(cfg.Consumers))
			}
			fmt.Fprintf(e.stdout, "%s: OK (%d pipelines%s, %d plugins)\n", path, len(cfg.Pipelines), consumers, n)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (required)")
	return cmd
}
