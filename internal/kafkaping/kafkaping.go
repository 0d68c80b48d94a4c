// Package kafkaping asks a franz-go client's cluster the questions kpipe's
// producers, sources and consumers ask before they start: whether a seed
// broker answers (Ping, bounded by a context) and which topics it lacks
// (AbsentTopics).
package kafkaping

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Ping is cl.Ping bounded by ctx. The client waits for a request it wrote
// to be answered or to time out (its request timeout, seconds) even after
// ctx ended, so a seed broker that accepts connections and never answers
// would hold a start, and an interrupted command, that long. Ping returns
// when ctx ends; the abandoned cl.Ping returns once the caller closes cl.
func Ping(ctx context.Context, cl *kgo.Client) error {
	done := make(chan error, 1)
	go func() { done <- cl.Ping(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AbsentTopics asks the cluster of cl which of names it does not have, and
// returns those. With create, the cluster is asked to create them, which it
// does if it creates topics on demand (auto.create.topics.enable); without,
// asking creates nothing.
func AbsentTopics(ctx context.Context, cl *kgo.Client, names []string, create bool) ([]string, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, t)
	}
	req.AllowAutoTopicCreation = create
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	var absent []string
	for _, t := range resp.Topics {
		if t.Topic != nil && (t.ErrorCode == kerr.UnknownTopicOrPartition.Code || t.ErrorCode == kerr.InvalidTopicException.Code) {
			absent = append(absent, *t.Topic)
		}
	}
	return absent, nil
}
