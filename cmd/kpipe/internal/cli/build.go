package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/embedded"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/wasmhost"
)

// checkConfig checks a configuration file and loads the modules of the
// pipelines named (all if none is), printing the diagnostics: validate and
// run report a file's problems through config.Check and CheckModules, the
// same way. Invalid configurations end the command with ExitFailed.
func (e *env) checkConfig(ctx context.Context, path string, host *wasmhost.Host, pipelines ...string) (*config.Config, error) {
	cfg, diags := config.Check(ctx, path, host, pipelines...)
	return cfg, e.configErrors(path, diags)
}

// configErrors prints diags and returns the error that ends the command if
// there is an error among them.
func (e *env) configErrors(path string, diags hcl.Diagnostics) error {
	_ = config.WriteDiagnostics(e.stderr, diags)
	if diags.HasErrors() {
		return failedf("%s: %d errors", path, countErrors(diags))
	}
	return nil
}

// buildConfig returns the options of the pipeline named in the file at path,
// with its modules loaded into host. A file with errors is reported as
// validate reports it (config.Check). Loading every module is what costs (a
// Go guest takes seconds to compile when the compilation cache is cold or
// off), so the modules are loaded once, by Build, and CheckModulesAfter only
// runs when Build failed, to report every module that does not load, each at
// its attribute (the one Build failed on from Build's error, the ones after
// it by loading them).
func (e *env) buildConfig(ctx context.Context, path, pipelineName string, host *wasmhost.Host) (*config.Config, []pipeline.Option, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		_, diags = config.Check(ctx, path, host, pipelineName)
		return nil, nil, e.configErrors(path, diags)
	}
	_ = config.WriteDiagnostics(e.stderr, diags) // warnings
	p, err := cfg.Pipeline(pipelineName)
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	// What the plugins log while they load is printed once they all
	// loaded; if one did not, the diagnostic says what it wrote.
	e.logOut.hold()
	opts, err := cfg.Build(ctx, p, host)
	e.logOut.release(err != nil)
	if err != nil {
		if err := e.configErrors(path, cfg.CheckModulesAfter(ctx, host, err, p.Name)); err != nil {
			return nil, nil, err
		}
		// The module failed in Build but loads now: report Build's error.
		return nil, nil, failedf("%v", err)
	}
	return cfg, opts, nil
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
		b.closers = append(b.closers, func() { closeHost(ctx, host) })
		var cfg *config.Config
		if cfg, opts, err = e.buildConfig(ctx, cfgPath, pipelineName, host); err != nil {
			return nil, err
		}
		if len(brokers) == 0 {
			brokers = cfg.Kafka.Brokers
		}
		b.transactional = cfg.Kafka.TransactionalID != ""
		b.cfg, b.host = cfg, host
		b.pipe, _ = cfg.Pipeline(pipelineName) // buildConfig found it
	} else if pipelineName != "" {
		return nil, usageErrorf("--pipeline needs --config")
	}
	if topic != "" {
		opts = append(opts, pipeline.DefaultTopic(topic))
	}
	if len(brokers) == 0 {
		if err := securityNeedsBrokers(b.cfg); err != nil {
			return nil, err
		}
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
		return nil, &exitError{code: ExitError, err: fmt.Errorf("starting the pipeline: %w", connectHint(b.cfg, err))}
	}
	b.producer = p
	ok = true
	return b, nil
}

// securityNeedsBrokers refuses the embedded broker to a configuration whose
// kafka block has a tls or sasl block: the embedded broker speaks plaintext
// without authentication, so those blocks are for brokers that the
// configuration or --brokers names, and were left unset by mistake.
func securityNeedsBrokers(cfg *config.Config) error {
	if cfg == nil || cfg.Kafka.TLS == nil && cfg.Kafka.SASL == nil {
		return nil
	}
	return usageErrorf("%s: the kafka block has a tls or sasl block but names no brokers, and the embedded broker kpipe would start speaks plaintext without authentication: set brokers (or --brokers)", rangePos(cfg.Kafka.DefRange))
}

// connectHint adds to err, a failure to reach the brokers, what a broker
// closing the connection most often means for the configuration's security
// settings: a listener that wants TLS or SASL and does not get it, or SASL
// credentials it refuses (some brokers answer them by closing the
// connection). Other errors are returned as they are.
func connectHint(cfg *config.Config, err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	var k config.Kafka
	if cfg != nil {
		k = cfg.Kafka
	}
	switch {
	case k.SASL != nil:
		over := "without TLS (add a tls block if it wants TLS)"
		if k.TLS != nil {
			over = "over TLS"
		}
		return fmt.Errorf("%w (the broker closed the connection: check the sasl block's mechanism, username and password, and that the broker's listener at that address takes SASL %s)", err, over)
	case k.TLS != nil:
		return fmt.Errorf("%w (the broker closed the connection: check that its listener at that address speaks TLS, and whether it wants a client certificate, the tls block's cert_file and key_file)", err)
	default:
		return fmt.Errorf("%w (the broker closed the connection: if its listener wants TLS or SASL, add a tls or sasl block to the kafka block)", err)
	}
}
