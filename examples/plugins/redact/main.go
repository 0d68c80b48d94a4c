package main

import kpipe "github.com/kpipe/kpipe/sdk/go"

// plugin wires the redactor to the SDK: the configuration is read in Init,
// once per instance.
type plugin struct{ *redactor }

func (p *plugin) Init() error {
	cfg := config{Replacement: "***"}
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	r, err := newRedactor(cfg)
	if err != nil {
		return err
	}
	p.redactor = r
	return nil
}

func init() { kpipe.RegisterViewInterceptor(&plugin{}) }

func main() {}
