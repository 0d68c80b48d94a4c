package main

import (
	kpipe "github.com/kpipe/kpipe/sdk/go"
	_ "github.com/kpipe/kpipe/sdk/go/ack" // stamper counts acknowledgements (OnAck)
)

// plugin wires the stamper to the SDK: the configuration is read in Init,
// once per instance.
type plugin struct{ *stamper }

func (p *plugin) Init() error {
	var cfg config
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	s, err := newStamper(cfg, kpipe.Log)
	if err != nil {
		return err
	}
	p.stamper = s
	// OnAck needs the outcome only: the host then sends 24 bytes per
	// acknowledgement instead of the whole record.
	kpipe.EnableFeatures(kpipe.FeatureAckNoRecord)
	return nil
}

func init() { kpipe.RegisterViewInterceptor(&plugin{}) }

func main() {}
