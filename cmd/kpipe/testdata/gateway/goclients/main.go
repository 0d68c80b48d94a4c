// Command goclients sends keyed records with headers through a kpipe gateway
// with one of two Go Kafka clients that share no code with kpipe, IBM's
// sarama and segmentio's kafka-go, for kpipe's end-to-end gateway test
// (cmd/kpipe/gateway_test.go, which builds and runs it).
//
// Usage: goclients -client sarama|sarama-sync|kafka-go -bootstrap HOST:PORT -topic T -count N [-codec C] [-idempotent]
//
// Record i has key "<client>-i", value "value-i" and header "i" = i, and
// goes to partition 0. sarama sends with its asynchronous producer (acks
// all; -idempotent turns on its idempotent producer), sarama-sync with its
// synchronous one, a record at a time, and kafka-go with its Writer (acks
// all). It prints "sent N" once every record was acknowledged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

func main() {
	client := flag.String("client", "sarama", "sarama, sarama-sync or kafka-go")
	bootstrap := flag.String("bootstrap", "", "the gateway's HOST:PORT")
	topic := flag.String("topic", "", "topic")
	count := flag.Int("count", 1000, "records to send")
	codec := flag.String("codec", "none", "none, gzip, snappy, lz4 or zstd")
	idempotent := flag.Bool("idempotent", false, "sarama: the idempotent producer")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	switch *client {
	case "sarama", "sarama-sync":
		err = viaSarama(ctx, *client, *bootstrap, *topic, *count, *codec, *idempotent)
	case "kafka-go":
		err = viaKafkaGo(ctx, *bootstrap, *topic, *count, *codec)
	default:
		err = fmt.Errorf("unknown client %q", *client)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclients:", err)
		os.Exit(1)
	}
	fmt.Println("sent", *count)
}

func viaSarama(ctx context.Context, client, bootstrap, topic string, count int, codec string, idempotent bool) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "kpipe-gateway-test"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	if err := cfg.Producer.Compression.UnmarshalText([]byte(codec)); err != nil {
		return err
	}
	if idempotent {
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
	}
	msg := func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Partition: 0,
			Key:     sarama.StringEncoder(client + "-" + strconv.Itoa(i)),
			Value:   sarama.StringEncoder("value-" + strconv.Itoa(i)),
			Headers: []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(strconv.Itoa(i))}}}
	}
	if client == "sarama-sync" {
		p, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
		if err != nil {
			return err
		}
		for i := range count {
			if _, _, err := p.SendMessage(msg(i)); err != nil {
				p.Close()
				return fmt.Errorf("record %d: %w", i, err)
			}
		}
		return p.Close()
	}
	p, err := sarama.NewAsyncProducer([]string{bootstrap}, cfg)
	if err != nil {
		return err
	}
	go func() {
		for i := range count {
			select {
			case p.Input() <- msg(i):
			case <-ctx.Done():
				return
			}
		}
	}()
	var errs []error
	for range count {
		select {
		case <-p.Successes():
		case e := <-p.Errors():
			errs = append(errs, e)
		case <-ctx.Done():
			p.AsyncClose()
			return ctx.Err()
		}
	}
	return errors.Join(append(errs, p.Close())...)
}

func viaKafkaGo(ctx context.Context, bootstrap, topic string, count int, codec string) error {
	w := &kafka.Writer{Addr: kafka.TCP(bootstrap), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: partitionZero{}, BatchTimeout: 5 * time.Millisecond}
	if codec != "none" {
		c, ok := map[string]compress.Compression{"gzip": compress.Gzip, "snappy": compress.Snappy, "lz4": compress.Lz4, "zstd": compress.Zstd}[codec]
		if !ok {
			return fmt.Errorf("unknown codec %q", codec)
		}
		w.Compression = c
	}
	msgs := make([]kafka.Message, count)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("kafka-go-" + strconv.Itoa(i)), Value: []byte("value-" + strconv.Itoa(i)),
			Headers: []kafka.Header{{Key: "i", Value: []byte(strconv.Itoa(i))}}}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// partitionZero sends every record to partition 0.
type partitionZero struct{}

func (partitionZero) Balance(kafka.Message, ...int) int { return 0 }
