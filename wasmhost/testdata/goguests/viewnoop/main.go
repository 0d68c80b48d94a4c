// Command viewnoop is a test interceptor written with the Go SDK's
// RecordView (kpipe.RegisterViewInterceptor): OnSendView reads the record's
// partition, drops the record if it is 1 and otherwise returns Unchanged.
// BenchmarkGoGuest measures it as the cost of a Go plugin that does nothing.
package main

import kpipe "github.com/kpipe/kpipe/sdk/go"

type noop struct{}

func (noop) OnSendView(v *kpipe.RecordView) (kpipe.Action, error) {
	if p, ok := v.Partition(); ok && p == 1 {
		return kpipe.Drop, nil
	}
	return kpipe.Unchanged, nil
}

func init() { kpipe.RegisterViewInterceptor(noop{}) }

func main() {}
