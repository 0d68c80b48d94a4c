package main

import kpipe "github.com/kpipe/kpipe/sdk/go"

// plugin wires the router to the SDK: the configuration is read in Init, once
// per instance.
type plugin struct{ *router }

func (p *plugin) Init() error {
	var cfg config
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	r, err := newRouter(cfg)
	if err != nil {
		return err
	}
	p.router = r
	// Without a field rule only the key matters: ask for the key alone
	// rather than the whole record. Every instance decides the same way,
	// from the same configuration, as the ABI requires.
	if cfg.Field == "" {
		kpipe.EnableFeatures(kpipe.FeaturePartitionKey)
	}
	return nil
}

func init() { kpipe.RegisterPartitioner(&plugin{}) }

func main() {}
