// Command transaction is the first note's transactional producer and its
// read_committed consumer: the records of a committed transaction are seen,
// those of an aborted one are not.
//
//	producer = KafkaProducer(
//	    bootstrap_servers='localhost:9092',
//	    value_serializer=lambda v: json.dumps(v).encode('utf-8'),
//	    key_serializer=lambda v: str(v).encode('utf-8') if v else None,
//	    acks='all', retries=10, enable_idempotence=True,
//	    transactional_id='test-producer-id',
//	)
//	producer.init_transactions()
//	try:
//	    producer.begin_transaction()
//	    producer.send(topic='test', value={'message': 'test message'})
//	    producer.commit_transaction()
//	except Exception as e:
//	    producer.abort_transaction()
//	producer.flush()
//	producer.close()
//
//	consumer = KafkaConsumer(bootstrap_servers='127.0.0.1:9092',
//	    auto_offset_reset='earliest', isolation_level='read_committed')
//
// kpipe is a producer; the consumer here is franz-go's, which kpipe is
// built on (kpipe consume --isolation read_committed does the same from the
// command line).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

func main() {
	brokers := flag.String("brokers", "localhost:9092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "test", "topic")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, strings.Split(*brokers, ","), *topic, "test-producer-id", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// errAbort makes the second transaction fail, to show the abort.
var errAbort = errors.New("something went wrong")

func run(ctx context.Context, brokers []string, topic, txnID string, out io.Writer) error {
	valSer, _ := plugins.NewSerializer(plugins.SerializerJSON, nil)
	keySer, _ := plugins.NewSerializer(plugins.SerializerString, nil)
	// There is no init_transactions: the producer gets its id and epoch
	// when the first transaction starts. acks=all and idempotence are the
	// defaults, and a transactional producer requires them.
	producer, err := pipeline.New(ctx,
		pipeline.Brokers(brokers...),
		pipeline.ValueSerializer("json", valSer),
		pipeline.KeySerializer("string", keySer),
		pipeline.Retries(10),
		pipeline.TransactionalID(txnID),
	)
	if err != nil {
		return err
	}
	defer producer.Close(context.WithoutCancel(ctx))

	// transact is the note's try/except: commit if the body worked, abort
	// otherwise.
	transact := func(message string, fail error) error {
		if err := producer.BeginTransaction(); err != nil {
			return err
		}
		value, _ := json.Marshal(map[string]string{"message": message})
		res := producer.SendSync(ctx, &plugins.Record{Topic: topic, Value: value})
		err := errors.Join(res.Err, fail)
		if err == nil {
			// CommitTransaction flushes, then commits.
			if err = producer.CommitTransaction(ctx); err == nil {
				fmt.Fprintf(out, "committed %q\n", message)
				return nil
			}
		}
		fmt.Fprintf(out, "aborting %q: %v\n", message, err)
		return producer.AbortTransaction(ctx)
	}
	if err := transact("committed message", nil); err != nil {
		return err
	}
	if err := transact("aborted message", errAbort); err != nil {
		return err
	}
	if err := producer.Flush(ctx); err != nil {
		return err
	}

	// The read_committed consumer sees the committed message only.
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // auto_offset_reset='earliest'
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),      // isolation_level='read_committed'
	)
	if err != nil {
		return err
	}
	defer consumer.Close()
	// Poll until the last stable offset passed both transactions: the
	// committed record, then nothing more for a second.
	var seen []string
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := consumer.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, r := range fs.Records() {
			seen = append(seen, string(r.Value))
			fmt.Fprintf(out, "read_committed consumer: %s\n", r.Value)
		}
		if len(seen) > 0 && fs.NumRecords() == 0 {
			return nil
		}
	}
}
