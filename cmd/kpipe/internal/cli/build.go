package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/embedded"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/wasmhost"
)

// checkConfig checks a configuration file and loads the modules of the
// pipelines named (all if none is), printing the diagnostics: validate and
// run report a file's problems through this one path, the same way. Invalid
// configurations end the command with ExitFailed.
func (e *env) checkConfig(ctx context.Context, path string, host *wasmhost.Host, pipelines ...string) (*config.Config, error) {
	cfg, diags := config.Check(ctx, path, host, pipelines...)
	_ = config.WriteDiagnostics(e.stderr, diags)
	if diags.HasErrors() {
		return nil, failedf("%s: %d errors", path, countErrors(diags))
	}
	return cfg, nil
}

func countErrors(diags interface{ Errs() []error }) int { return len(diags.Errs()) }

// connectTimeout bounds the wait for the first broker to answer.
const connectTimeout = 30 * time.Second

// buildProducer creates the producer of run: from the configuration file if
// there is one, with brokers and topic overriding it, and on an embedded
// broker if there are no brokers at all.
func (e *env) buildProducer(ctx context.Context, cfgPath, pipelineName string, brokers []string, topic string) (*built, error) {
	b := &built{}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()

	var opts []pipeline.Option
	if cfgPath != "" {
		host, err := e.newHost(ctx)
		if err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
		b.closers = append(b.closers, func() { _ = host.Close(context.Background()) })
		cfg, err := e.checkConfig(ctx, cfgPath, host, pipelineName)
		if err != nil {
			return nil, err
		}
		p, err := cfg.Pipeline(pipelineName)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		if opts, err = cfg.Build(ctx, p, host); err != nil {
			// A plugin that does not load is a configuration error.
			return nil, failedf("%v", err)
		}
		if len(brokers) == 0 {
			brokers = cfg.Kafka.Brokers
		}
		b.transactional = cfg.Kafka.TransactionalID != ""
	} else if pipelineName != "" {
		return nil, usageErrorf("--pipeline needs --config")
	}
	if topic != "" {
		opts = append(opts, pipeline.DefaultTopic(topic))
	}
	if len(brokers) == 0 {
		eb, err := embedded.Start(embedded.Config{})
		if err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
		b.embedded = eb
		b.closers = append(b.closers, eb.Close)
		brokers = []string{eb.Addr()}
	}
	// Like the Java producer, ask the broker to create missing topics; it
	// does if its auto.create.topics.enable allows (the embedded one does).
	opts = append(opts, pipeline.KgoOptions(kgo.AllowAutoTopicCreation()))
	opts = append(opts, pipeline.Brokers(brokers...), pipeline.Logger(e.log))
	// New waits for a seed broker to answer; do not wait forever on an
	// address that swallows packets.
	nctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	p, err := pipeline.New(nctx, opts...)
	if err != nil {
		return nil, &exitError{code: ExitError, err: fmt.Errorf("starting the pipeline: %w", err)}
	}
	b.producer = p
	ok = true
	return b, nil
}
