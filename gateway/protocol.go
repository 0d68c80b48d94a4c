package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiRange is an API the gateway serves and the versions it serves.
type apiRange struct{ key, min, max int16 }

// served are the APIs the gateway answers, and their versions: what the
// producers of kafka-python 3.x, librdkafka 2.x and the Java 3.9 client
// use. Produce starts at 3, the first version with magic 2 record batches,
// and stops at 12 (13 names topics by id). Every other API is answered
// with an error (see unsupported).
//
// Fetch is listed though it is answered with an error too: librdkafka
// enables record batches of magic 2 (and with them idempotence) only for
// brokers that list both Produce 3+ and Fetch 4+ (zstd: Fetch 10+).
var served = []apiRange{
	{key: 0, min: 3, max: 12}, // Produce
	{key: 1, min: 4, max: 12}, // Fetch (answered with an error)
	{key: 3, min: 0, max: 12}, // Metadata
	{key: 10, min: 0, max: 4}, // FindCoordinator (answered with an error)
	{key: 18, min: 0, max: 3}, // ApiVersions
	{key: 22, min: 0, max: 4}, // InitProducerId
}

// saslServed are the APIs of SASL authentication, served with SASLUsers.
// SaslHandshake is listed from version 0 because librdkafka takes a broker
// whose list starts later for one without SASL; a version 0 handshake,
// after which a client would send its SASL messages without Kafka framing
// (clients older than Kafka 1.0, or without SaslAuthenticate), is answered
// UNSUPPORTED_VERSION (see conn.authenticate).
var saslServed = []apiRange{
	{key: 17, min: 0, max: 1}, // SaslHandshake
	{key: 36, min: 0, max: 2}, // SaslAuthenticate
}

func servedRange(key int16) (apiRange, bool) { return rangeOf(served, key) }

// header is the request header (versions 0 to 2).
type header struct {
	key, version int16
	correlation  int32
	clientID     string
	// flexible: the request, and its response header, carry tagged
	// fields.
	flexible bool
}

var errShort = errors.New("request shorter than its header")

// parseHeader reads a request header from b and returns it, the request
// type (nil if kmsg does not know the key) and the body after it.
func parseHeader(b []byte) (header, kmsg.Request, []byte, error) {
	var h header
	if len(b) < 10 {
		return h, nil, nil, errShort
	}
	h.key = int16(binary.BigEndian.Uint16(b))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(b[4:]))
	n := int(int16(binary.BigEndian.Uint16(b[8:])))
	b = b[10:]
	if n > 0 {
		if n > len(b) {
			return h, nil, nil, errShort
		}
		h.clientID = string(b[:n])
		b = b[n:]
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return h, nil, b, nil
	}
	req.SetVersion(h.version)
	h.flexible = req.IsFlexible()
	if h.flexible {
		var err error
		if b, err = skipTags(b); err != nil {
			return h, nil, nil, err
		}
	}
	return h, req, b, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, l := binary.Uvarint(b)
	if l <= 0 {
		return nil, errShort
	}
	b = b[l:]
	for i := uint64(0); i < n; i++ {
		if _, l = binary.Uvarint(b); l <= 0 {
			return nil, errShort
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || uint64(len(b)-l) < size {
			return nil, errShort
		}
		b = b[l+int(size):]
	}
	return b, nil
}

// appendResponse frames resp for the request of header h: size,
// correlation id, the header's tagged fields when flexible (never for
// ApiVersions, whose response header is always version 0), the body.
func appendResponse(dst []byte, h header, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.correlation))
	if h.flexible && h.key != 18 {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// apiVersions answers an ApiVersions request. A version the gateway does
// not serve is answered at version 0 with UNSUPPORTED_VERSION and the list,
// as a broker does, so that the client retries with one it does.
func apiVersions(h header, sasl bool) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	r, _ := servedRange(18)
	if h.version > r.max {
		resp.SetVersion(0)
		resp.ErrorCode = codeUnsupportedVersion
	} else {
		resp.SetVersion(h.version)
	}
	list := served
	if sasl {
		list = append(slices.Clip(served), saslServed...)
	}
	for _, s := range list {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = s.key, s.min, s.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}

// unsupported builds the response to a request the gateway does not serve:
// every error_code field of the response, at any depth, is code. Lists
// the response would echo from the request stay empty, except the
// partitions of a produce request; the response is well formed at the
// request's version.
func unsupported(req kmsg.Request, code int16) (kmsg.Response, error) {
	if req.GetVersion() < 0 || req.GetVersion() > req.MaxVersion() {
		return nil, fmt.Errorf("version %d of %s is not one the gateway can encode", req.GetVersion(), kmsg.NameForKey(req.Key()))
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if pr, ok := req.(*kmsg.ProduceRequest); ok {
		// A produce response has no error code of its own: each
		// partition of the request gets one, or the client waits for
		// an answer about its records that never comes.
		presp := resp.(*kmsg.ProduceResponse)
		for _, t := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			presp.Topics = append(presp.Topics, rt)
		}
	}
	setErrorCodes(reflect.ValueOf(resp).Elem(), code)
	return resp, nil
}

func setErrorCodes(v reflect.Value, code int16) {
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch {
		case t.Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16:
			f.SetInt(int64(code))
		case f.Kind() == reflect.Struct:
			setErrorCodes(f, code)
		}
	}
}
