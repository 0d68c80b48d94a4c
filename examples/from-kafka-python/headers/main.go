// Command headers is the second note's notebook: a JSON producer sends a
// record with headers and waits for it (synchronous send), then sends
// another with callbacks (asynchronous send) and flushes.
//
//	producer = KafkaProducer(bootstrap_servers=["kafka1:9092"],
//	    value_serializer=lambda v: json.dumps(v).encode())
//	message = "Hello, Kafka!"
//	headers = [("header_key1", b"header_value1"), ("header_key2", b"header_value2")]
//	future = producer.send('test_topic', value=message, headers=headers)
//	try:
//	    meta_data = future.get()
//	    print(f"{meta_data.topic} - {meta_data.partition} : {meta_data.offset}")
//	except KafkaError as excp:
//	    log.exception()
//
//	def on_send_success(record_metadata):
//	    print(record_metadata.topic)
//	    print(record_metadata.partition)
//	    print(record_metadata.offset)
//	def on_send_error(excp):
//	    log.error('I am an errback', exc_info=excp)
//	producer.send('my-topic', 'raw_bytes').add_callback(on_send_success).add_errback(on_send_error)
//	producer.flush()
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

func main() {
	brokers := flag.String("brokers", "kafka1:9092", "bootstrap brokers, comma-separated")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, strings.Split(*brokers, ","), "test_topic", "my-topic", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, brokers []string, topic, asyncTopic string, out io.Writer) error {
	valSer, _ := plugins.NewSerializer(plugins.SerializerJSON, nil)
	producer, err := pipeline.New(ctx,
		pipeline.Brokers(brokers...),
		pipeline.ValueSerializer("json", valSer),
	)
	if err != nil {
		return err
	}
	defer producer.Close(context.WithoutCancel(ctx))

	// Synchronous send: send(...).get() is SendSync.
	message, _ := json.Marshal("Hello, Kafka!")
	res := producer.SendSync(ctx, &plugins.Record{
		Topic: topic,
		Value: message,
		Headers: []plugins.Header{
			{Key: "header_key1", Value: []byte("header_value1")},
			{Key: "header_key2", Value: []byte("header_value2")},
		},
	})
	if res.Err != nil {
		log.Printf("send failed: %v", res.Err)
		return res.Err
	}
	fmt.Fprintf(out, "%s - %d : %d\n", res.Topic, res.Partition, res.Offset)

	// Asynchronous send: the callback gets the outcome; Err says which
	// of add_callback and add_errback would have run.
	raw, _ := json.Marshal("raw_bytes")
	producer.Send(ctx, &plugins.Record{Topic: asyncTopic, Value: raw}, func(_ *plugins.Record, res pipeline.Result) {
		if res.Err != nil {
			log.Printf("I am an errback: %v", res.Err)
			return
		}
		fmt.Fprintln(out, res.Topic)
		fmt.Fprintln(out, res.Partition)
		fmt.Fprintln(out, res.Offset)
	})
	// flush blocks until every buffered record is sent and its callback
	// ran.
	return producer.Flush(ctx)
}
