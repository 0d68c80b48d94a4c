package main

import (
	kpipe "github.com/kpipe/kpipe/sdk/go"
	_ "github.com/kpipe/kpipe/sdk/go/consume" // exports the consume-side hooks
)

// plugin wires the masker to the SDK: the configuration is read in Init,
// once per instance.
type plugin struct{ masker }

func (p *plugin) Init() error {
	var cfg config
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	m, err := newMasker(cfg)
	if err != nil {
		return err
	}
	p.masker = m
	return nil
}

func init() { kpipe.RegisterConsumeInterceptor(&plugin{}) }

func main() {}
