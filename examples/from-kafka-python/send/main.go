// Command send is the first note's example: a producer with a JSON value
// serializer and a string key serializer sends one record, is told of its
// outcome by a callback, waits for it, flushes and closes.
//
//	producer = KafkaProducer(
//	    bootstrap_servers='localhost:9092',
//	    value_serializer=lambda v: json.dumps(v).encode('utf-8'),
//	    key_serializer=lambda v: str(v).encode('utf-8') if v else None,
//	)
//	resp = producer.send(topic='test', value={'message': 'test message'})
//	resp.add_callback(lambda metadata: print(f"Message sent to {metadata.topic} partition {metadata.partition}"))
//	resp.add_errback(lambda e: print(f"Error sending message: {e}"))
//	resp.get()
//	producer.flush()
//	producer.close()
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
	// The serializers are kpipe's built-ins: "json" checks that the value
	// is one JSON value (json.dumps is done by the caller, as values are
	// bytes in kpipe), "string" that the key is UTF-8. Null keys are never
	// passed to a serializer, like kafka-python's "if v else None".
	valSer, _ := plugins.NewSerializer(plugins.SerializerJSON, nil)
	keySer, _ := plugins.NewSerializer(plugins.SerializerString, nil)
	producer, err := pipeline.New(ctx,
		pipeline.Brokers(brokers...),
		pipeline.ValueSerializer("json", valSer),
		pipeline.KeySerializer("string", keySer),
	)
	if err != nil {
		return err
	}

	value, err := json.Marshal(map[string]string{"message": "test message"})
	if err != nil {
		return err
	}
	// send returns a future in kafka-python; in kpipe the callback is
	// given to Send, and add_callback and add_errback are its two
	// outcomes. get() is waiting for the callback.
	done := make(chan pipeline.Result, 1)
	producer.Send(ctx, &plugins.Record{Topic: topic, Value: value}, func(_ *plugins.Record, res pipeline.Result) {
		if res.Err != nil {
			fmt.Fprintf(out, "Error sending message: %v\n", res.Err)
		} else {
			fmt.Fprintf(out, "Message sent to %s partition %d\n", res.Topic, res.Partition)
		}
		done <- res
	})
	var res pipeline.Result
	select {
	case res = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}

	if err := producer.Flush(ctx); err != nil {
		return err
	}
	if _, err := producer.Close(ctx); err != nil {
		return err
	}
	return res.Err
}
