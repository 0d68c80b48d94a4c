package plugins

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The consume-side kinds run on records a consumer fetched, before the
// application sees them, as the Java client's Deserializer and
// ConsumerInterceptor.onConsume do. Their hooks take the fetched
// *kgo.Record itself, so a record that no plugin changes is never copied.
// In a WASM module they need ABI version 2 (sdk/ABI.md section 10).
const (
	// KindConsumeInterceptor sees, changes or drops every consumed record
	// (ConsumeInterceptor).
	KindConsumeInterceptor Kind = 1 << 3
	// KindDeserializer turns a consumed key or value into what the
	// application reads (Deserializer).
	KindDeserializer Kind = 1 << 4
)

// ConsumeInterceptor sees every consumed record after deserialization and
// before the application does. It is the analogue of the Java client's
// ConsumerInterceptor.onConsume.
//
// Implementations must be safe for concurrent use.
type ConsumeInterceptor interface {
	// OnConsume may replace r's Key, Value, Headers and Timestamp, or return
	// Drop to filter the record out (the application never sees it; its
	// offset still counts as consumed). Topic, Partition and Offset say
	// where the record was read and must not be changed. If it returns an
	// error the record is left as it was before the call (OnConsume must
	// not write into the bytes of r.Key, r.Value or the header values and
	// then fail), and the consumer applies the plugin's failure policy.
	OnConsume(ctx context.Context, r *kgo.Record) (Verdict, error)
}

// BatchConsumeInterceptor is a ConsumeInterceptor that can run OnConsume on
// many records in one call, as a fetch delivers them.
type BatchConsumeInterceptor interface {
	ConsumeInterceptor
	// OnConsumeBatch is OnConsume for each record of rs, in order. verdicts
	// and errs have the length of rs; it sets verdicts[i] and errs[i] for
	// record i. A record whose errs[i] is not nil must be left as it was.
	// A non-nil return means the whole call failed, leaving every record
	// as it was; the error applies to each of them.
	OnConsumeBatch(ctx context.Context, rs []*kgo.Record, verdicts []Verdict, errs []error) error
}

// Deserializer turns the bytes of a consumed key or value into what the
// application reads (Kafka property key.deserializer / value.deserializer).
// It is called only for non-nil data: a null key or value stays null.
//
// Implementations must be safe for concurrent use.
type Deserializer interface {
	// Deserialize returns the new r.Key (TargetKey) or r.Value
	// (TargetValue). It must not modify r. A nil result with a nil error
	// makes the field null; an error fails the record.
	Deserialize(ctx context.Context, target Target, r *kgo.Record) ([]byte, error)
}
