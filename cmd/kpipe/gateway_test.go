package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/internal/testenv"
	"github.com/kpipe/kpipe/plugins"
)

// gatewayRecords is how many records each client sends through the gateway.
const gatewayRecords = 10000

// gatewayConfig writes a configuration with a header-stamping WASM
// interceptor (the Go example headerstamp) and a WASM partitioner (the WAT
// example keyhash: murmur2 of the key, as the Java client), and returns its
// path.
func gatewayConfig(t *testing.T) string {
	t.Helper()
	stamp := plugintest.GoPlugin(t, "examples/plugins/headerstamp")
	keyhash := filepath.Join(plugintest.RepoRoot(t), "examples", "plugins", "wat", "keyhash.wasm")
	return writeFile(t, filepath.Join(t.TempDir(), "gateway.hcl"), fmt.Sprintf(`
pipeline "gw" {
  interceptor "stamp" {
    module = %q
    config = { headers = { stamped = "kpipe-gateway" } }
    # Compiling a Go guest with a cold cache took over the default minute
    # on a 2-core machine with a load average of 25.
    load_timeout = "4m"
  }
  partitioner {
    module = %q
  }
}
`, stamp, keyhash))
}

// startGateway runs `kpipe gateway` with args and returns the address it
// listens on. At the end of the test it is stopped with SIGINT and must
// exit 0 within 30s.
func startGateway(t *testing.T, args ...string) string {
	t.Helper()
	return startGatewayProc(t, args...).addr
}

// startGatewayProc is startGateway, also returning the process and its
// stderr.
func startGatewayProc(t *testing.T, args ...string) server {
	t.Helper()
	return startServer(t, kpipeTimeout, 30*time.Second, append([]string{"gateway", "--listen", "127.0.0.1:0"}, args...)...)
}

// runClient runs an external client with a time limit and returns its
// stdout; it fails the test if the client fails.
func runClient(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n--- stdout\n%s--- stderr\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// checkUpstream reads topic upstream and checks that it holds exactly the n
// records prefix-0 .. prefix-(n-1), each once, with value value-i, the
// client's header i=i (or, with staticHeader, that header), the gateway's
// stamp header stamped=stamp unless stamp is empty (then no other header),
// on the partition partitionOf gives its key.
func checkUpstream(t *testing.T, brokers []string, topic, prefix string, n int, partitionOf func(key []byte) int32, staticHeader, stamp string) {
	t.Helper()
	recs := testbroker.ReadAll(t, brokers, topic, n, false)
	seen := make([]bool, n)
	for _, r := range recs {
		key := string(r.Key)
		i, err := strconv.Atoi(strings.TrimPrefix(key, prefix+"-"))
		if !strings.HasPrefix(key, prefix+"-") || err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected key %q", key)
		}
		if seen[i] {
			t.Fatalf("record %s upstream twice", key)
		}
		seen[i] = true
		if want := fmt.Sprintf("value-%d", i); string(r.Value) != want {
			t.Fatalf("record %s: value %q, want %q", key, r.Value, want)
		}
		if want := partitionOf(r.Key); r.Partition != want {
			t.Fatalf("record %s on partition %d, want %d", key, r.Partition, want)
		}
		hs := map[string]string{}
		for _, h := range r.Headers {
			hs[h.Key] = string(h.Value)
		}
		wantHdr := "i=" + strconv.Itoa(i)
		if staticHeader != "" {
			wantHdr = staticHeader
		}
		k, v, _ := strings.Cut(wantHdr, "=")
		wantN := 1
		if stamp != "" {
			wantN = 2
		}
		if hs[k] != v || hs["stamped"] != stamp || len(hs) != wantN || len(r.Headers) != wantN {
			t.Fatalf("record %s: headers %v, want %s and stamped=%q", key, r.Headers, wantHdr, stamp)
		}
	}
	total := testbroker.Total(testbroker.EndOffsets(t, brokers, topic))
	if total != int64(n) {
		t.Fatalf("%s holds %d records upstream, want %d", topic, total, n)
	}
}

// keyhash is where the gateway's keyhash partitioner puts a key.
func keyhash(partitions int32) func([]byte) int32 {
	return func(key []byte) int32 { return plugins.KeyPartition(key, partitions) }
}

// TestGatewayClients sends 10,000 keyed records with headers through `kpipe
// gateway`, running a header-stamping WASM interceptor and a WASM
// partitioner, from franz-go, kafka-python (acks 1 and all, with and
// without compression), kcat (lz4, zstd), the Java client (idempotent),
// KafkaJS, sarama and kafka-go, each to partition 0; upstream, every record is there once, stamped, on
// the partitioner's partition, with its key, value and headers.
func TestGatewayClients(t *testing.T) {
	brokers := testbroker.Brokers(t)
	addr := startGateway(t, "--config", gatewayConfig(t), "--brokers", strings.Join(brokers, ","))
	const partitions = 4

	t.Run("franz-go", func(t *testing.T) {
		topic := testbroker.CreateTopic(t, brokers, partitions)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.ZstdCompression()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := range gatewayRecords {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte("go-" + strconv.Itoa(i)), Value: []byte("value-" + strconv.Itoa(i)),
				Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}}}, func(r *kgo.Record, err error) {
				if err != nil {
					t.Errorf("%s: %v", r.Key, err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkUpstream(t, brokers, topic, "go", gatewayRecords, keyhash(partitions), "", "kpipe-gateway")
	})

	t.Run("kafka-python", func(t *testing.T) {
		python := testenv.RequireTool(t, "python3")
		if out, err := exec.Command(python, "-c", "import kafka").CombinedOutput(); err != nil {
			testenv.Unavailable(t, "python3 cannot import kafka-python: %v: %s", err, out)
		}
		script := filepath.Join(plugintest.RepoRoot(t), "scripts", "gateway_produce.py")
		for _, c := range []struct{ acks, compression string }{{"1", "none"}, {"all", "none"}, {"1", "gzip"}, {"all", "snappy"}} {
			t.Run("acks="+c.acks+"/"+c.compression, func(t *testing.T) {
				topic := testbroker.CreateTopic(t, brokers, partitions)
				runClient(t, python, script, "--bootstrap", addr, "--topic", topic, "--count", strconv.Itoa(gatewayRecords),
					"--acks", c.acks, "--compression", c.compression)
				checkUpstream(t, brokers, topic, "py", gatewayRecords, keyhash(partitions), "", "kpipe-gateway")
			})
		}
	})

	t.Run("kcat", func(t *testing.T) {
		kcat := testenv.RequireTool(t, "kcat")
		var in strings.Builder
		for i := range gatewayRecords {
			fmt.Fprintf(&in, "kcat-%d:value-%d\n", i, i)
		}
		for _, codec := range []string{"lz4", "zstd"} {
			t.Run(codec, func(t *testing.T) {
				topic := testbroker.CreateTopic(t, brokers, partitions)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, kcat, "-P", "-b", addr, "-t", topic, "-p", "0", "-K", ":",
					"-H", "i=kcat", "-X", "compression.codec="+codec, "-X", "enable.idempotence=true")
				cmd.Stdin = strings.NewReader(in.String())
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("kcat: %v\n%s", err, out)
				}
				checkUpstream(t, brokers, topic, "kcat", gatewayRecords, keyhash(partitions), "i=kcat", "kpipe-gateway")
			})
		}
	})

	t.Run("java", func(t *testing.T) {
		classDir := javaProducer(t)
		topic := testbroker.CreateTopic(t, brokers, partitions)
		out := runClient(t, "java", "-cp", classDir, "GatewayProducer", addr, topic, strconv.Itoa(gatewayRecords), "0", "lz4")
		if !strings.Contains(out, "sent ") {
			t.Fatalf("java producer: %s", out)
		}
		checkUpstream(t, brokers, topic, "java", gatewayRecords, keyhash(partitions), "", "kpipe-gateway")
	})

	t.Run("kafkajs", func(t *testing.T) {
		node := testenv.RequireTool(t, "node")
		modules := filepath.Join(plugintest.RepoRoot(t), kafkajsDir)
		if _, err := os.Stat(filepath.Join(modules, "kafkajs", "package.json")); err != nil {
			testenv.Unavailable(t, "kafkajs is not installed under %s (make gateway-clients): %v", kafkajsDir, err)
		}
		script := filepath.Join(plugintest.RepoRoot(t), "cmd", "kpipe", "testdata", "gateway", "kafkajs_produce.js")
		for _, c := range []struct{ codec, mode string }{{"none", "idempotent"}, {"gzip", "plain"}} {
			t.Run(c.codec+"/"+c.mode, func(t *testing.T) {
				topic := testbroker.CreateTopic(t, brokers, partitions)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, script, addr, topic, strconv.Itoa(gatewayRecords), c.codec, c.mode)
				cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "sent ") {
					t.Fatalf("kafkajs: %v\n%s", err, out)
				}
				checkUpstream(t, brokers, topic, "kafkajs", gatewayRecords, keyhash(partitions), "", "kpipe-gateway")
			})
		}
	})

	// Two Go clients that share no code with kpipe (testdata/gateway/goclients):
	// sarama's asynchronous producer in every codec, idempotent or not, its
	// synchronous producer (a record per request, each waiting for its
	// response), and kafka-go's Writer.
	t.Run("go clients", func(t *testing.T) {
		bin := goClients(t)
		for _, c := range []struct {
			client, codec string
			idempotent    bool
			n             int
		}{
			{"sarama", "none", true, gatewayRecords},
			{"sarama", "gzip", false, gatewayRecords},
			{"sarama", "snappy", true, gatewayRecords},
			{"sarama", "lz4", false, gatewayRecords},
			{"sarama", "zstd", true, gatewayRecords},
			{"sarama-sync", "none", true, 1000},
			{"kafka-go", "none", false, gatewayRecords},
			{"kafka-go", "lz4", false, gatewayRecords},
			{"kafka-go", "zstd", false, gatewayRecords},
		} {
			t.Run(fmt.Sprintf("%s/%s/idempotent=%v", c.client, c.codec, c.idempotent), func(t *testing.T) {
				topic := testbroker.CreateTopic(t, brokers, partitions)
				args := []string{"-client", c.client, "-bootstrap", addr, "-topic", topic, "-count", strconv.Itoa(c.n), "-codec", c.codec}
				if c.idempotent {
					args = append(args, "-idempotent")
				}
				if out := runClient(t, bin, args...); !strings.Contains(out, "sent ") {
					t.Fatalf("%s: %s", c.client, out)
				}
				checkUpstream(t, brokers, topic, c.client, c.n, keyhash(partitions), "", "kpipe-gateway")
			})
		}
	})
}

// kafkajsDir is where make gateway-clients installs KafkaJS.
const kafkajsDir = "build/npm-kafkajs/node_modules"

// goClients builds testdata/gateway/goclients, a module of its own (sarama
// and kafka-go are not kpipe's dependencies), and returns the binary.
func goClients(t *testing.T) string {
	t.Helper()
	goTool := testenv.RequireTool(t, "go")
	goClientsOnce.Do(func() {
		// Next to the binary under test: TestMain removes both.
		out := filepath.Join(filepath.Dir(kpipeBin), "goclients")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, ".")
		cmd.Dir = filepath.Join(plugintest.RepoRoot(t), "cmd", "kpipe", "testdata", "gateway", "goclients")
		if msg, err := cmd.CombinedOutput(); err != nil {
			goClientsErr = fmt.Errorf("go build in %s: %v\n%s", cmd.Dir, err, msg)
			return
		}
		goClientsBin = out
	})
	if goClientsErr != nil {
		t.Fatal(goClientsErr)
	}
	return goClientsBin
}

// goClientsBin is where goClients built the Go clients, once per run of the
// tests; goClientsErr why it could not.
var (
	goClientsOnce sync.Once
	goClientsBin  string
	goClientsErr  error
)

// javaProducer compiles testdata/gateway/GatewayProducer.java against the
// Kafka jars scripts/kafka.sh fetches, and returns the class path to run it.
func javaProducer(t *testing.T) string {
	t.Helper()
	javac := testenv.RequireTool(t, "javac")
	testenv.RequireTool(t, "java")
	version := os.Getenv("KPIPE_KAFKA_VERSION")
	if version == "" {
		version = "3.9.1"
	}
	cache := os.Getenv("KPIPE_KAFKA_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "kpipe", "kafka-"+version)
	}
	lib := filepath.Join(cache, "lib")
	if _, err := os.Stat(filepath.Join(lib, "kafka-clients-"+version+".jar")); err != nil {
		testenv.Unavailable(t, "kafka-clients jar not found (run scripts/kafka.sh fetch): %v", err)
	}
	javaOnce.Do(func() {
		// Next to the binary under test: TestMain removes both.
		out := filepath.Join(filepath.Dir(kpipeBin), "gateway-java")
		src := filepath.Join(plugintest.RepoRoot(t), "cmd", "kpipe", "testdata", "gateway", "GatewayProducer.java")
		runClient(t, javac, "-cp", filepath.Join(lib, "*"), "-d", out, src)
		javaClasses = out
	})
	if javaClasses == "" {
		t.Fatal("GatewayProducer.java did not compile (see the first test that needed it)")
	}
	return javaClasses + string(os.PathListSeparator) + filepath.Join(lib, "*")
}

// javaClasses is where javaProducer compiled GatewayProducer, once per run
// of the tests.
var (
	javaOnce    sync.Once
	javaClasses string
)

// TestGatewayTransactionalClients: kafka-python's and the Java client's
// transactional producers get the documented error when they initialize
// their transactions: TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
func TestGatewayTransactionalClients(t *testing.T) {
	brokers := testbroker.Brokers(t)
	addr := startGateway(t, "--brokers", strings.Join(brokers, ","))
	t.Run("kafka-python", func(t *testing.T) {
		python := testenv.RequireTool(t, "python3")
		if out, err := exec.Command(python, "-c", "import kafka").CombinedOutput(); err != nil {
			testenv.Unavailable(t, "python3 cannot import kafka-python: %v: %s", err, out)
		}
		script := filepath.Join(plugintest.RepoRoot(t), "scripts", "gateway_produce.py")
		out := runClient(t, python, script, "--bootstrap", addr, "--topic", "unused", "--transactional")
		if !strings.Contains(out, "TransactionalIdAuthorizationFailed") {
			t.Fatalf("kafka-python transactional producer: %q, want TransactionalIdAuthorizationFailed", out)
		}
	})
	t.Run("java", func(t *testing.T) {
		classDir := javaProducer(t)
		out := runClient(t, "java", "-cp", classDir, "GatewayProducer", addr, "unused", "0", "0", "none", "transactional")
		if !strings.Contains(out, "TransactionalIdAuthorizationException") {
			t.Fatalf("java transactional producer: %q, want TransactionalIdAuthorizationException", out)
		}
	})
}

// TestGatewayUsage: bad flags and a transactional configuration are refused
// before the gateway serves, with the exit code and a message naming what
// was wrong.
func TestGatewayUsage(t *testing.T) {
	txn := writeFile(t, filepath.Join(t.TempDir(), "txn.hcl"), `kafka {
  transactional_id = "t"
}
pipeline "p" {}
`)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"gateway", "--memory-limit", "lots"}, 2, "--memory-limit"},
		{[]string{"gateway", "--advertise", "nohost"}, 2, "--advertise"},
		{[]string{"gateway", "--listen", "0.0.0.0:0", "--brokers", "127.0.0.1:1"}, 2, "--advertise"},
		{[]string{"gateway", "--listen", "nocolon"}, 2, "--listen"},
		{[]string{"gateway", "--pprof"}, 2, "--pprof needs --admin"},
		{[]string{"gateway", "--config", txn, "--brokers", "127.0.0.1:1"}, 1, "transactional_id"},
		{[]string{"gateway", "--cpuprofile", filepath.Join(t.TempDir(), "no", "dir", "cpu.pprof"), "--brokers", "127.0.0.1:1"}, 3, "--cpuprofile"},
	} {
		r := kpipe(t, "", "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("kpipe %s: %s\nwant exit %d and %q", strings.Join(c.args, " "), r, c.code, c.want)
		}
	}
}

// freeAddr is a loopback address nothing listens on, for a process to
// listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestGatewayAdmin: with --admin the gateway serves the admin endpoint:
// /metrics has the pipeline's metrics and the gateway's per connection and
// per topic, /readyz answers, and POST /v1/reload reloads the configuration.
func TestGatewayAdmin(t *testing.T) {
	brokers := testbroker.Brokers(t)
	adminAddr := freeAddr(t)
	gp := startGatewayProc(t, "--config", gatewayConfig(t), "--brokers", strings.Join(brokers, ","), "--admin", adminAddr, "--pprof")
	addr := gp.addr
	topic := testbroker.CreateTopic(t, brokers, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("admin-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+adminAddr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// A client id that is not UTF-8, kept open during the scrape, used to
	// make /metrics answer 500 (Prometheus label values must be UTF-8).
	bad, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("bad\xff\xfeid"))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	code, metrics := get("GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, metrics)
	}
	for _, want := range []string{
		fmt.Sprintf(`kpipe_gateway_topic_records_total{outcome="delivered",topic=%q} 100`, topic),
		fmt.Sprintf(`kpipe_gateway_topic_records_total{outcome="received",topic=%q} 100`, topic),
		`kpipe_gateway_connection_records_total{client_id="admin-test"`,
		"kpipe_gateway_connection_requests_total{client_id=\"bad\uFFFDid\"",
		`kpipe_gateway_memory_limit_bytes 2.68435456e+08`,
		`kpipe_records_delivered_total 100`,
		`kpipe_producer_batches_total `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}
	if code, body := get("GET", "/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code, body := get("GET", "/debug/pprof/cmdline"); code != 200 || !strings.Contains(body, "gateway") {
		t.Fatalf("/debug/pprof/cmdline with --pprof: %d %s", code, body)
	}
	if code, body := get("POST", "/v1/reload"); code != 200 {
		t.Fatalf("POST /v1/reload: %d %s", code, body)
	}
	// SIGHUP reloads too.
	if err := gp.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(kpipeTimeout); !strings.Contains(gp.stderr.String(), "reload (SIGHUP)"); {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged within %v of SIGHUP:\n%s", kpipeTimeout, gp.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get("GET", "/v1/pipeline"); code != 200 || !strings.Contains(body, `"ok": 2`) {
		t.Fatalf("/v1/pipeline after two reloads: %d %s", code, body)
	}
}

// TestGatewayReloadPartitioner: a reload that adds a partitioner makes the
// pipeline choose the partitions of the records read after it; before, the
// clients' partitions were kept.
func TestGatewayReloadPartitioner(t *testing.T) {
	brokers := testbroker.Brokers(t)
	cfg := writeFile(t, filepath.Join(t.TempDir(), "gw.hcl"), `pipeline "p" {}`+"\n")
	gp := startGatewayProc(t, "--config", cfg, "--brokers", strings.Join(brokers, ","))
	topic := testbroker.CreateTopic(t, brokers, 4)
	cl, err := kgo.NewClient(kgo.SeedBrokers(gp.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	send := func(prefix string) {
		for i := range 50 {
			r := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(prefix + strconv.Itoa(i)), Value: []byte("v")}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	send("before-")
	keyhash := filepath.Join(plugintest.RepoRoot(t), "examples", "plugins", "wat", "keyhash.wasm")
	writeFile(t, cfg, fmt.Sprintf("pipeline \"p\" {\n  partitioner {\n    module = %q\n  }\n}\n", keyhash))
	if err := gp.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(kpipeTimeout); !strings.Contains(gp.stderr.String(), "reload (SIGHUP): chain 1 → 2"); {
		if time.Now().After(deadline) {
			t.Fatalf("no reload to chain 2 within %v of SIGHUP:\n%s", kpipeTimeout, gp.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	send("after-")
	for _, r := range testbroker.ReadAll(t, brokers, topic, 100, false) {
		want := int32(0)
		if strings.HasPrefix(string(r.Key), "after-") {
			want = plugins.KeyPartition(r.Key, 4)
		}
		if r.Partition != want {
			t.Fatalf("record %s on partition %d, want %d", r.Key, r.Partition, want)
		}
	}
}

// TestGatewayProfiles: --cpuprofile and --memprofile write pprof profiles
// (gzipped protocol buffers) of the gateway when it stops.
func TestGatewayProfiles(t *testing.T) {
	brokers := testbroker.Brokers(t)
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	gp := startGatewayProc(t, "--brokers", strings.Join(brokers, ","), "--cpuprofile", cpu, "--memprofile", mem)
	topic := testbroker.CreateTopic(t, brokers, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(gp.addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := gp.proc.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(gp.stderr.String(), "gateway stopped"); {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not stop within 30s:\n%s", gp.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The profiles are written as the command returns, after the summary:
	// each is read until it is a whole gzipped stream.
	for _, f := range []string{cpu, mem} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			n, err := profileBytes(f)
			if err == nil && n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is not a pprof profile after the gateway stopped: %d bytes, %v", f, n, err)
			}
		}
	}
}

// profileBytes returns the size of the pprof profile in file f once
// decompressed.
func profileBytes(f string) (int, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return 0, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	raw, err := io.ReadAll(zr)
	return len(raw), err
}
