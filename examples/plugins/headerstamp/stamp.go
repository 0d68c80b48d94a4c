package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

// config is the plugin's JSON configuration.
type config struct {
	Headers         map[string]string `json:"headers"`
	SequenceHeader  string            `json:"sequence_header"`
	TimestampHeader string            `json:"timestamp_header"`
	LogEvery        uint64            `json:"log_every"`
}

// stamper adds the configured headers and counts acknowledgements.
type stamper struct {
	names  []string // static header names, sorted for a stable order
	values [][]byte
	seqHdr string
	tsHdr  string
	every  uint64
	log    func(kpipe.Level, string)
	now    func() time.Time

	seq       uint64
	seqBuf    []byte // reused: the encoded record is built before the next call
	tsBuf     []byte
	delivered uint64
	failed    uint64
}

// newStamper validates cfg and returns a stamper that logs with log.
func newStamper(cfg config, log func(kpipe.Level, string)) (*stamper, error) {
	if len(cfg.Headers) == 0 && cfg.SequenceHeader == "" && cfg.TimestampHeader == "" {
		return nil, errors.New(`headerstamp: nothing to do: set "headers", "sequence_header" or "timestamp_header"`)
	}
	s := &stamper{seqHdr: cfg.SequenceHeader, tsHdr: cfg.TimestampHeader, every: cfg.LogEvery, log: log, now: time.Now}
	for name := range cfg.Headers {
		if name == "" {
			return nil, errors.New("headerstamp: a header name is empty")
		}
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		s.values = append(s.values, []byte(cfg.Headers[name]))
	}
	for _, name := range []string{s.seqHdr, s.tsHdr} {
		if _, dup := cfg.Headers[name]; dup && name != "" {
			return nil, fmt.Errorf("headerstamp: header %q is configured twice", name)
		}
	}
	if s.seqHdr != "" && s.seqHdr == s.tsHdr {
		return nil, fmt.Errorf("headerstamp: sequence_header and timestamp_header are both %q", s.seqHdr)
	}
	return s, nil
}

// OnSendView sets the headers on the record. It reads nothing else, so it
// takes a RecordView: the SDK decodes nothing and hands the host the header
// edits alone (BenchmarkGoGuest in wasmhost, stamp against noop).
func (s *stamper) OnSendView(r *kpipe.RecordView) (kpipe.Action, error) {
	for i, name := range s.names {
		r.SetHeader(name, s.values[i])
	}
	if s.seqHdr != "" {
		s.seq++
		s.seqBuf = strconv.AppendUint(s.seqBuf[:0], s.seq, 10)
		r.SetHeader(s.seqHdr, s.seqBuf)
	}
	if s.tsHdr != "" {
		s.tsBuf = strconv.AppendInt(s.tsBuf[:0], s.now().UnixMilli(), 10)
		r.SetHeader(s.tsHdr, s.tsBuf)
	}
	return kpipe.Changed, nil
}

// OnAck counts the outcome of a record. It reads only the acknowledgement,
// so the plugin asks for acknowledgements without their record
// (kpipe.FeatureAckNoRecord, in main.go): r has only its partition and
// timestamp.
func (s *stamper) OnAck(_ *kpipe.Record, ack kpipe.Ack) error {
	if ack.Delivered() {
		s.delivered++
	} else {
		s.failed++
		if kpipe.LogEnabled(kpipe.LevelDebug) {
			s.log(kpipe.LevelDebug, fmt.Sprintf("a record failed: %s", ack.Error))
		}
	}
	if s.every > 0 && (s.delivered+s.failed)%s.every == 0 {
		s.log(kpipe.LevelInfo, fmt.Sprintf("acks in this instance: %d delivered, %d failed", s.delivered, s.failed))
	}
	return nil
}
