package gateway

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
)

// errorCode maps why a record failed upstream to the Kafka error code its
// client should see, and a message for the response's error_message.
//
// Errors the upstream broker returned keep their code, so the client
// retries or reports exactly what it would have directly. kpipe's own
// failures map to the code a client treats the same way: a timeout is
// retriable (REQUEST_TIMED_OUT), a record the pipeline cannot serialize is
// not (INVALID_RECORD), a gateway shutting down sends the client elsewhere
// (NOT_LEADER_OR_FOLLOWER makes it refresh its metadata and retry).
func errorCode(err error) (int16, string) {
	if err == nil {
		return codeNone, ""
	}
	msg := "kpipe gateway: " + err.Error()
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke.Code, msg
	case errors.Is(err, pipeline.ErrRecordTooLarge):
		return codeMessageTooLarge, msg
	case errors.Is(err, pipeline.ErrSerialize):
		return codeInvalidRecord, msg
	case errors.Is(err, pipeline.ErrClosed), errors.Is(err, kgo.ErrClientClosed):
		return codeNotLeaderOrFollower, msg
	case errors.Is(err, pipeline.ErrNoTopic), errors.Is(err, pipeline.ErrUnknownPartition):
		return codeUnknownTopicOrPartition, msg
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries):
		return codeRequestTimedOut, msg
	}
	return codeUnknownServerError, msg
}
