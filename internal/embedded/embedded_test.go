package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		in      string
		want    Topic
		wantErr bool
	}{
		{in: "orders", want: Topic{"orders", DefaultPartitions}},
		{in: "orders:12", want: Topic{"orders", 12}},
		{in: "orders:0", wantErr: true},
		{in: "orders:x", wantErr: true},
		{in: "orders:10000", want: Topic{"orders", MaxPartitions}},
		{in: "orders:10001", wantErr: true},
		{in: "orders:100000000", wantErr: true},
		{in: ":3", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTopic(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTopic(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("ParseTopic(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestStartProduceConsume(t *testing.T) {
	b, err := Start(Config{Topics: []Topic{{"seeded", 5}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("seeded"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := int32(0); p < 5; p++ {
		r := &kgo.Record{Topic: "seeded", Partition: p, Value: []byte("v")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
	seen := map[int32]bool{}
	for len(seen) < 5 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed partitions %v before timeout", seen)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[r.Partition] = true })
	}
}

func TestStartBadListen(t *testing.T) {
	if _, err := Start(Config{Listen: "nonsense"}); err == nil {
		t.Fatal("Start with a bad listen address succeeded")
	}
}
