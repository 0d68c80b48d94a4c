package main

import kpipe "github.com/kpipe/kpipe/sdk/go"

// plugin wires the framer to the SDK: the configuration is read in Init, once
// per instance.
type plugin struct{ *framer }

func (p *plugin) Init() error {
	var cfg config
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	f, err := newFramer(cfg)
	if err != nil {
		return err
	}
	p.framer = f
	return nil
}

func init() { kpipe.RegisterSerializer(&plugin{}) }

func main() {}
