package cli

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

func TestPluginConfig(t *testing.T) {
	tests := []struct {
		kv      []string
		raw     string
		want    string
		wantErr bool
	}{
		{want: ""},
		{kv: []string{"a=1", "b=x=y", "c="}, want: `{"a":"1","b":"x=y","c":""}`},
		{kv: []string{"a=1", "a=2"}, want: `{"a":"2"}`},
		{raw: `{"n": [1, 2]}`, want: `{"n": [1, 2]}`},
		{kv: []string{"novalue"}, wantErr: true},
		{kv: []string{"=v"}, wantErr: true},
		{raw: `{`, wantErr: true},
		{kv: []string{"a=1"}, raw: `{}`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := pluginConfig(tt.kv, tt.raw)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("pluginConfig(%q, %q) = %s, %v; want %s, error %v", tt.kv, tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOutRecord(t *testing.T) {
	ts := time.UnixMilli(1767323045123)
	r := &kgo.Record{
		Topic: "t", Partition: 2, Offset: 7, Timestamp: ts,
		Key:   nil,
		Value: []byte{0xff, 0x00},
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte("2")}, {Key: "n"},
			{Key: "e", Value: []byte{}}, {Key: "b", Value: []byte{0xfe}}, {Key: "r", Value: []byte{0xff}}, {Key: "r", Value: []byte("x")}},
	}
	b, err := json.Marshal(outRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"topic":"t","partition":2,"offset":7,"timestamp":1767323045123,"key":null,"value":null,"value_base64":"/wA=","headers":{"e":"","h":"2","n":null,"r":"x"},"headers_base64":{"b":"/g=="}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	r.Key, r.Value = []byte("k"), []byte{}
	b, _ = json.Marshal(outRecord(r))
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["key"] != "k" || m["value"] != "" || m["value_base64"] != nil {
		t.Errorf("utf-8 key and empty value: %s", b)
	}
}

func TestKindList(t *testing.T) {
	for k, want := range map[plugins.Kind]string{
		0:                           "none",
		plugins.KindSerializer:      "serializer",
		plugins.KindInterceptor | 6: "interceptor, serializer, partitioner",
	} {
		if got := kindList(k); got != want {
			t.Errorf("kindList(%d) = %q, want %q", k, got, want)
		}
	}
}

func TestSplitList(t *testing.T) {
	if got := splitList(" a:1, ,b:2,"); !reflect.DeepEqual(got, []string{"a:1", "b:2"}) {
		t.Errorf("splitList = %q", got)
	}
}

func TestFormatRecord(t *testing.T) {
	r := &plugins.Record{Topic: "t", Key: []byte("k"), Value: []byte{1, 0xfe},
		Headers: []plugins.Header{{Key: "a", Value: nil}}, Timestamp: time.UnixMilli(5)}
	r.SetPartition(3)
	want := `topic="t" key="k" value=2 bytes 01fe headers={"a": null} partition=3 timestamp=5`
	if got := formatRecord(r); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCheckAddrs(t *testing.T) {
	for _, tt := range []struct {
		addrs        []string
		portOptional bool
		minPort      int
		ok           bool
	}{
		{[]string{"127.0.0.1:9092", "[::1]:9092", "kafka-1.example:19092"}, true, 1, true},
		{[]string{"localhost"}, true, 1, true},
		{[]string{"localhost"}, false, 0, false},
		{[]string{"127.0.0.1:0"}, false, 0, true},
		{[]string{"127.0.0.1:0"}, true, 1, false},
		{[]string{"127.0.0.1:65536"}, true, 1, false},
		{[]string{"127.0.0.1:x"}, true, 1, false},
		{[]string{"::1"}, true, 1, false},
		{[]string{"a b:1"}, true, 1, false},
	} {
		err := checkAddrs("--x", tt.addrs, tt.portOptional, tt.minPort)
		if (err == nil) != tt.ok {
			t.Errorf("checkAddrs(%q, %v, %d) = %v, want ok %v", tt.addrs, tt.portOptional, tt.minPort, err, tt.ok)
		}
	}
}
