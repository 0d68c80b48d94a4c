package kpipe_test

import (
	"bytes"
	"fmt"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

// upper is an interceptor that upper-cases the values of records sent to one
// topic, configured with {"topic": "shouting"}.
type upper struct {
	topic string
	buf   []byte
}

func (u *upper) Init() error {
	var cfg struct {
		Topic string `json:"topic"`
	}
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	if cfg.Topic == "" {
		return fmt.Errorf(`upper: "topic" is required`)
	}
	u.topic = cfg.Topic
	return nil
}

func (u *upper) OnSend(r *kpipe.Record) (kpipe.Action, error) {
	if r.Topic != u.topic || r.Value == nil {
		return kpipe.Unchanged, nil // the cheap answer: nothing is copied back
	}
	// Reuse a buffer of the plugin rather than allocating per record; the
	// host copies the record out before the next call.
	u.buf = append(u.buf[:0], bytes.ToUpper(r.Value)...)
	r.Value = u.buf
	return kpipe.Changed, nil
}

func (u *upper) OnAck(r *kpipe.Record, ack kpipe.Ack) error {
	if !ack.Delivered() {
		kpipe.Logf(kpipe.LevelWarn, "record to %s failed: %s", r.Topic, ack.Error)
	}
	return nil
}

// An interceptor is registered from an init function of package main, which
// also needs an empty main function. upper has OnAck, so its main package
// also imports package ack, which exports the acknowledgement hooks:
//
//	import _ "github.com/kpipe/kpipe/sdk/go/ack"
//
//	func init() { kpipe.RegisterInterceptor(&upper{}) }
//
//	func main() {}
func ExampleRegisterInterceptor() {
	kpipe.RegisterInterceptor(&upper{})
}

// keyLength is a partitioner that sends records with short keys to partition
// 0 and lets the default partitioner place the others.
type keyLength struct{}

func (keyLength) Partition(r *kpipe.Record, numPartitions int32) (int32, error) {
	if r.Key != nil && len(r.Key) < 4 {
		return 0, nil
	}
	return kpipe.DefaultPartition, nil
}

func ExampleRegisterPartitioner() {
	kpipe.RegisterPartitioner(keyLength{})
}

// prefixed is a serializer that puts a version byte before the value, and
// leaves keys as they are.
type prefixed struct{ buf []byte }

func (p *prefixed) Serialize(target kpipe.Target, r *kpipe.Record) ([]byte, error) {
	if target == kpipe.TargetKey {
		return r.Key, nil
	}
	p.buf = append(append(p.buf[:0], 1), r.Value...)
	return p.buf, nil
}

func ExampleRegisterSerializer() {
	kpipe.RegisterSerializer(&prefixed{})
}

func ExampleRecord_SetHeader() {
	r := &kpipe.Record{Headers: []kpipe.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}}
	r.SetHeader("a", []byte("3"))
	r.SetHeader("b", []byte("4"))
	for _, h := range r.Headers {
		fmt.Printf("%s=%s\n", h.Key, h.Value)
	}
	// Output:
	// a=3
	// b=4
}

// region stamps every record with a header naming the region its key starts
// with, reading only the key: as a ViewInterceptor it gets a RecordView, so
// the SDK decodes nothing else and hands the host the header edit alone.
type region struct{ eu, other []byte }

func (g region) OnSendView(v *kpipe.RecordView) (kpipe.Action, error) {
	if bytes.HasPrefix(v.Key(), []byte("eu-")) {
		v.SetHeader("region", g.eu)
	} else {
		v.SetHeader("region", g.other)
	}
	return kpipe.Changed, nil
}

// A ViewInterceptor is registered from an init function of package main:
//
//	func init() { kpipe.RegisterViewInterceptor(region{[]byte("eu"), []byte("other")}) }
//
//	func main() {}
func ExampleRegisterViewInterceptor() {
	kpipe.RegisterViewInterceptor(region{[]byte("eu"), []byte("other")})
}

// NewRecordView tests a ViewInterceptor natively: its getters show the
// changes made through its setters.
func ExampleNewRecordView() {
	v, err := kpipe.NewRecordView(&kpipe.Record{Topic: "orders", Key: []byte("eu-42")})
	if err != nil {
		panic(err)
	}
	action, _ := region{[]byte("eu"), []byte("other")}.OnSendView(v)
	h, _ := v.Header("region")
	fmt.Println(action, string(h))
	// Output: changed eu
}
