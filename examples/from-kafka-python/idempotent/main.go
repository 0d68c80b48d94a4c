// Command idempotent is the first note's idempotent producer: acks=all,
// retries and enable_idempotence, so that a retried request is never
// written twice and records keep their order per partition.
//
//	producer = KafkaProducer(
//	    bootstrap_servers='localhost:9092',
//	    value_serializer=lambda v: json.dumps(v).encode('utf-8'),
//	    key_serializer=lambda v: str(v).encode('utf-8') if v else None,
//	    acks='all',                 # wait for every in-sync replica
//	    retries=10,                 # retries
//	    enable_idempotence=True     # idempotent writes
//	)
//
// The note's conditions for idempotence hold in kpipe as in Kafka: acks must
// be all (pipeline.New fails otherwise), retries must not be off, and at
// most 5 requests are in flight per broker (franz-go keeps exactly 5).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

func main() {
	brokers := flag.String("brokers", "localhost:9092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "test", "topic")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, strings.Split(*brokers, ","), *topic, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, brokers []string, topic string, out io.Writer) error {
	valSer, _ := plugins.NewSerializer(plugins.SerializerJSON, nil)
	keySer, _ := plugins.NewSerializer(plugins.SerializerString, nil)
	producer, err := pipeline.New(ctx,
		pipeline.Brokers(brokers...),
		pipeline.ValueSerializer("json", valSer),
		pipeline.KeySerializer("string", keySer),
		pipeline.Acks(pipeline.AcksAll),
		pipeline.Retries(10),
		pipeline.Idempotence(true),
	)
	if err != nil {
		return err
	}
	defer producer.Close(context.WithoutCancel(ctx))

	for i := range 3 {
		value, _ := json.Marshal(map[string]any{"message": "test message", "n": i})
		// SendSync is send(...).get(): it waits for the outcome.
		res := producer.SendSync(ctx, &plugins.Record{Topic: topic, Key: []byte("order-1"), Value: value})
		if res.Err != nil {
			return res.Err
		}
		fmt.Fprintf(out, "%s - %d : %d\n", res.Topic, res.Partition, res.Offset)
	}
	return producer.Flush(ctx)
}
