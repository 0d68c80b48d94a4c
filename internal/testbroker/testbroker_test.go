package testbroker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/testbroker"
)

// A topic is created with its partitions and unique name, and ReadAll returns
// what was produced, in read_committed mode too.
func TestCreateTopicAndReadAll(t *testing.T) {
	brokers := testbroker.Brokers(t)
	a := testbroker.CreateTopic(t, brokers, 3)
	b := testbroker.CreateTopic(t, brokers, 3)
	if a == b || !strings.Contains(a, "TestCreateTopicAndReadAll") {
		t.Errorf("topic names %q and %q", a, b)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := int32(0); p < 3; p++ {
		r := &kgo.Record{Topic: a, Partition: p, Value: []byte{'0' + byte(p)}}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
	for _, committed := range []bool{false, true} {
		got := map[int32]string{}
		for _, r := range testbroker.ReadAll(t, brokers, a, 3, committed) {
			got[r.Partition] = string(r.Value)
		}
		if got[0] != "0" || got[1] != "1" || got[2] != "2" {
			t.Errorf("read_committed=%v: %v", committed, got)
		}
	}
}

func TestIsFake(t *testing.T) {
	t.Setenv(testbroker.EnvBrokers, " ")
	if !testbroker.IsFake() {
		t.Error("blank KPIPE_TEST_BROKERS is not fake")
	}
	t.Setenv(testbroker.EnvBrokers, "a:1, b:2 ,")
	if testbroker.IsFake() {
		t.Error("KPIPE_TEST_BROKERS set, IsFake true")
	}
	if got := strings.Join(testbroker.Brokers(t), ";"); got != "a:1;b:2" {
		t.Errorf("Brokers = %q", got)
	}
}
