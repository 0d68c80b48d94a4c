package plugins_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/plugins"
)

// Kafka's UtilsTest.testMurmur2 golden vectors.
func TestMurmur2KafkaVectors(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want int32
	}{
		{[]byte("21"), -973932308},
		{[]byte("foobar"), -790332482},
		{[]byte("a-little-bit-long-string"), -985981536},
		{[]byte("a-little-bit-longer-string"), -1486304829},
		{[]byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971},
		{[]byte{'a', 'b', 'c'}, 479470107},
	} {
		if got := int32(plugins.Murmur2(c.in)); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// Partitions computed independently (Python) from the vectors above:
// ((hash + 2**32) & 0x7fffffff) % n.
func TestKeyPartition(t *testing.T) {
	for _, c := range []struct {
		key  string
		n    int32
		want int32
	}{
		{"21", 1, 0},
		{"21", 7, 3},
		{"foobar", 10, 6},
		{"abc", 3, 0},
	} {
		if got := plugins.KeyPartition([]byte(c.key), c.n); got != c.want {
			t.Errorf("KeyPartition(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
}

func TestSerializers(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{"bytes", "\xff\x00raw", "\xff\x00raw", ""},
		{"string", "héllo", "héllo", ""},
		{"string", "bad \xff", "", "not valid UTF-8"},
		{"json", ` { "a" : [1, 2 ,3] } `, `{"a":[1,2,3]}`, ""},
		{"json", `"x"`, `"x"`, ""},
		{"json", `{"a":`, "", "not valid JSON"},
		{"json", `{} {}`, "", "not valid JSON"},
		{"json", ``, "", "not valid JSON"},
	} {
		s, err := plugins.NewSerializer(c.name, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []plugins.Target{plugins.TargetKey, plugins.TargetValue} {
			r := &plugins.Record{Key: []byte("k"), Value: []byte("v")}
			if target == plugins.TargetKey {
				r.Key = []byte(c.in)
			} else {
				r.Value = []byte(c.in)
			}
			got, err := s.Serialize(ctx, target, r)
			switch {
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("%s(%q) %s: err = %v, want %q", c.name, c.in, target, err, c.wantErr)
			case c.wantErr == "" && (err != nil || string(got) != c.want):
				t.Errorf("%s(%q) %s = %q, %v; want %q", c.name, c.in, target, got, err, c.want)
			case c.wantErr != "" && !strings.Contains(err.Error(), target.String()):
				t.Errorf("%s error %q does not name the target %s", c.name, err, target)
			}
		}
	}
}

func TestRegistry(t *testing.T) {
	for _, name := range plugins.BuiltinSerializers() {
		for _, cfg := range []string{"", " null ", "{}", " { } "} {
			if _, err := plugins.NewSerializer(name, []byte(cfg)); err != nil {
				t.Errorf("NewSerializer(%q, %q): %v", name, cfg, err)
			}
		}
		if _, err := plugins.NewSerializer(name, []byte(`{"x":1}`)); err == nil {
			t.Errorf("NewSerializer(%q) accepted a config", name)
		}
	}
	for _, name := range plugins.BuiltinPartitioners() {
		p, err := plugins.NewPartitioner(name, []byte("{}"))
		if err != nil {
			t.Errorf("NewPartitioner(%q): %v", name, err)
			continue
		}
		_, perTopic := p.(plugins.PerTopicPartitioner)
		_, explicit := p.(plugins.ExplicitPartitioner)
		if perTopic == explicit {
			t.Errorf("%q: PerTopicPartitioner %v, ExplicitPartitioner %v; want exactly one", name, perTopic, explicit)
		}
		if _, err := plugins.NewPartitioner(name, []byte("{")); err == nil {
			t.Errorf("NewPartitioner(%q) accepted config %q", name, "{")
		}
	}
	// "bytes" is the identity: it returns the very bytes it is given
	// (a pipeline maps it to no serializer at all); the others check
	// and may copy.
	for _, name := range plugins.BuiltinSerializers() {
		s, _ := plugins.NewSerializer(name, nil)
		in := []byte(`"x"`)
		out, err := s.Serialize(context.Background(), plugins.TargetValue, &plugins.Record{Value: in})
		if identity := err == nil && len(out) > 0 && &out[0] == &in[0]; identity != (name == "bytes") && name != "string" {
			t.Errorf("%s: identity %v", name, identity)
		}
	}
	_, err := plugins.NewSerializer("avro", nil)
	if err == nil || !strings.Contains(err.Error(), `unknown serializer "avro"`) || !strings.Contains(err.Error(), "json") {
		t.Errorf("unknown serializer: err = %v", err)
	}
	_, err = plugins.NewPartitioner("hash", nil)
	if err == nil || !strings.Contains(err.Error(), `unknown partitioner "hash"`) || !strings.Contains(err.Error(), "round-robin") {
		t.Errorf("unknown partitioner: err = %v", err)
	}
}

func TestPartitioners(t *testing.T) {
	ctx := context.Background()
	const n = 5
	keyed := &plugins.Record{Key: []byte("foobar")}
	unkeyed := &plugins.Record{Value: []byte("v")}
	want := plugins.KeyPartition(keyed.Key, n)

	get := func(name string) plugins.Partitioner {
		p, err := plugins.NewPartitioner(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	part := func(p plugins.Partitioner, r *plugins.Record) int32 {
		t.Helper()
		got, err := p.Partition(ctx, r, n)
		if err != nil || got < 0 || got >= n {
			t.Fatalf("Partition = %d, %v", got, err)
		}
		return got
	}

	t.Run("keyed", func(t *testing.T) {
		for _, name := range []string{"default", "murmur2"} {
			p := get(name)
			tp := p.(plugins.PerTopicPartitioner).ForTopic("t")
			if got := part(p, keyed); got != want {
				t.Errorf("%s: keyed record to %d, want %d", name, got, want)
			}
			if got := part(tp, keyed); got != want {
				t.Errorf("%s ForTopic: keyed record to %d, want %d", name, got, want)
			}
		}
	})
	t.Run("round robin", func(t *testing.T) {
		for _, name := range []string{"round-robin", "murmur2"} {
			p := get(name)
			tp := p.(plugins.PerTopicPartitioner).ForTopic("t")
			for i := int32(0); i < 2*n; i++ {
				r := unkeyed
				if name == "round-robin" {
					r = keyed // keys are ignored
				}
				if got := part(p, r); got != i%n {
					t.Errorf("%s: record %d to %d, want %d", name, i, got, i%n)
				}
				if got := part(tp, r); got != i%n {
					t.Errorf("%s ForTopic: record %d to %d, want %d", name, i, got, i%n)
				}
			}
		}
	})
	t.Run("sticky", func(t *testing.T) {
		for _, c := range []struct {
			name string
			r    *plugins.Record
		}{{"default", unkeyed}, {"sticky", unkeyed}, {"sticky", keyed}} {
			tp := get(c.name).(plugins.PerTopicPartitioner).ForTopic("t")
			first := part(tp, c.r)
			for i := 0; i < 10; i++ {
				if got := part(tp, c.r); got != first {
					t.Fatalf("%s: sticky partition moved from %d to %d without a new batch", c.name, first, got)
				}
			}
			tp.OnNewBatch()
			if got := part(tp, c.r); got == first {
				t.Errorf("%s: partition stayed %d after a new batch", c.name, got)
			}
		}
	})
	t.Run("manual", func(t *testing.T) {
		p := get("manual")
		if !p.(plugins.ExplicitPartitioner).RequiresExplicitPartition() {
			t.Error("manual does not require explicit partitions")
		}
		if _, err := p.Partition(ctx, unkeyed, n); err != plugins.ErrNoPartition {
			t.Errorf("manual: err = %v, want ErrNoPartition", err)
		}
	})
}
