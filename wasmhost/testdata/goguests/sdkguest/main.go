// Command sdkguest is a test plugin written with the Go SDK: an interceptor,
// serializer and partitioner whose OnSend behaviour is chosen by the
// record's partition field, so that the host tests can drive every path:
//
//	0  Unchanged
//	1  panic("boom") (recovered by the SDK: KPIPE_ERROR)
//	2  return an error ("refused")
//	3  allocate until the memory limit stops the Go runtime
//	4  upper-case the value, add header "seen" = "yes", Changed
//	5  endless loop
//	6  print "hello stdout" and log "hello log", Unchanged
//	7  return an error carrying the config
//	8  Drop
//	9  return an error describing the sandbox: the year from the wall clock,
//	   8 random bytes, the number of environment variables and arguments,
//	   and the error of reading the root directory
//	10 os.Exit(3): the instance exits, a fault of the call (not
//	   recoverable by the SDK, unlike a panic)
//
// OnAck fails with a message that describes the acknowledgement it got, so
// the test can check its encoding. Serialize upper-cases the target;
// Partition returns len(key) % numPartitions.
//
// Its Init fails if the config is {"fail_init": true}.
package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	kpipe "github.com/kpipe/kpipe/sdk/go"
	_ "github.com/kpipe/kpipe/sdk/go/ack" // the guest has OnAck
)

type guest struct{}

var hoard [][]byte

func (guest) Init() error {
	var cfg struct {
		FailInit bool   `json:"fail_init"`
		Greeting string `json:"greeting"`
	}
	if err := kpipe.DecodeConfig(&cfg); err != nil {
		return err
	}
	if cfg.FailInit {
		return errors.New("fail_init is set")
	}
	return nil
}

func (guest) OnSend(r *kpipe.Record) (kpipe.Action, error) {
	switch r.Partition {
	case 1:
		panic("boom")
	case 2:
		return kpipe.Unchanged, errors.New("refused")
	case 3:
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case 4:
		r.Value = bytes.ToUpper(r.Value)
		r.SetHeader("seen", []byte("yes"))
		return kpipe.Changed, nil
	case 5:
		for {
		}
	case 6:
		fmt.Println("hello stdout")
		kpipe.Log(kpipe.LevelInfo, "hello log")
	case 7:
		return kpipe.Unchanged, fmt.Errorf("config is %s", kpipe.Config())
	case 8:
		return kpipe.Drop, nil
	case 10:
		os.Exit(3)
	case 9:
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return kpipe.Unchanged, err
		}
		_, fsErr := os.ReadDir("/")
		return kpipe.Unchanged, fmt.Errorf("year=%d random=%x env=%d args=%d fs=%v",
			time.Now().Year(), b, len(os.Environ()), len(os.Args), fsErr)
	}
	return kpipe.Unchanged, nil
}

func (guest) OnAck(r *kpipe.Record, ack kpipe.Ack) error {
	return fmt.Errorf("ack offset=%d error=%q topic=%s partition=%d/%v timestamp=%d/%v key=%s",
		ack.Offset, ack.Error, r.Topic, r.Partition, r.HasPartition, r.Timestamp, r.HasTimestamp, r.Key)
}

func (guest) Serialize(target kpipe.Target, r *kpipe.Record) ([]byte, error) {
	if target == kpipe.TargetKey {
		return bytes.ToUpper(r.Key), nil
	}
	return bytes.ToUpper(r.Value), nil
}

func (guest) Partition(r *kpipe.Record, n int32) (int32, error) {
	return int32(len(r.Key)) % n, nil
}

func init() {
	kpipe.RegisterInterceptor(guest{})
	kpipe.RegisterSerializer(guest{})
	kpipe.RegisterPartitioner(guest{})
}

func main() {}
