package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpipe/kpipe/internal/embedded"
)

func newBrokerCmd(e *env) *cobra.Command {
	var (
		listen string
		topics []string
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an in-memory Kafka-protocol broker until interrupted",
		Long: `Run an embedded single-node broker (franz-go's kfake) until SIGINT or SIGTERM.

The first line on stdout is the bootstrap address (HOST:PORT) for clients. Topics
not created with --topic are created on first use with ` + fmt.Sprint(embedded.DefaultPartitions) + ` partitions.
Everything is kept in memory and lost when the broker stops: this is for trying
kpipe out and for tests, not for data that matters.`,
		Example: `  kpipe broker --listen 127.0.0.1:9092 --topic orders:6 --topic audit
  addr=$(kpipe broker | head -n1)   # in a script`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkAddrs("--listen", []string{listen}, false, 0); err != nil {
				return err
			}
			cfg := embedded.Config{Listen: listen}
			for _, s := range topics {
				t, err := embedded.ParseTopic(s)
				if err != nil {
					return usageErrorf("--topic: %v", err)
				}
				cfg.Topics = append(cfg.Topics, t)
			}
			b, err := embedded.Start(cfg)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			defer b.Close()
			fmt.Fprintln(e.stdout, b.Addr())
			if f, ok := e.stdout.(interface{ Sync() error }); ok {
				_ = f.Sync()
			}
			e.say("embedded broker (kfake, in memory) listening on %s; stop with Ctrl-C", b.Addr())
			<-cmd.Context().Done()
			e.say("stopping the embedded broker")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:0", "HOST:PORT to listen on (port 0: any free port)")
	f.StringArrayVar(&topics, "topic", nil, "topic to create, NAME or NAME:PARTITIONS (repeatable)")
	return cmd
}
