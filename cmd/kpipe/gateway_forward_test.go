package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/internal/testenv"
)

// TestGatewayForwardClients: through a gateway whose pipeline reads and
// changes nothing, kafka-python (acks all, gzip), kcat (lz4, idempotent)
// and the Java client (idempotent, lz4) each send 10,000 keyed records with
// headers to partition 1; their batches are forwarded as they are, and
// upstream every record is there once, on partition 1, with its key, value
// and header. /metrics counts them as forwarded and delivered.
func TestGatewayForwardClients(t *testing.T) {
	brokers := testbroker.Brokers(t)
	adminAddr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(t.TempDir(), "gw.hcl"), `pipeline "p" {}`+"\n")
	// Every batch is forwarded, the last few records' small ones too.
	addr := startGatewayProc(t, "--config", cfg, "--brokers", strings.Join(brokers, ","), "--admin", adminAddr, "--forward-min-records", "1").addr

	check := func(t *testing.T, topic, prefix, header string) {
		t.Helper()
		checkUpstream(t, brokers, topic, prefix, gatewayRecords, func([]byte) int32 { return 1 }, header, "")
		wantMetrics(t, adminAddr,
			fmt.Sprintf(`kpipe_gateway_topic_forwarded_records_total{topic=%q} %d`, topic, gatewayRecords),
			fmt.Sprintf(`kpipe_gateway_topic_records_total{outcome="delivered",topic=%q} %d`, topic, gatewayRecords))
	}

	t.Run("kafka-python", func(t *testing.T) {
		python := testenv.RequireTool(t, "python3")
		if out, err := exec.Command(python, "-c", "import kafka").CombinedOutput(); err != nil {
			testenv.Unavailable(t, "python3 cannot import kafka-python: %v: %s", err, out)
		}
		topic := testbroker.CreateTopic(t, brokers, 2)
		script := filepath.Join(plugintest.RepoRoot(t), "scripts", "gateway_produce.py")
		runClient(t, python, script, "--bootstrap", addr, "--topic", topic, "--count", strconv.Itoa(gatewayRecords),
			"--partition", "1", "--acks", "all", "--compression", "gzip")
		check(t, topic, "py", "")
	})

	t.Run("kcat", func(t *testing.T) {
		kcat := testenv.RequireTool(t, "kcat")
		var in strings.Builder
		for i := range gatewayRecords {
			fmt.Fprintf(&in, "kcat-%d:value-%d\n", i, i)
		}
		topic := testbroker.CreateTopic(t, brokers, 2)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, "-P", "-b", addr, "-t", topic, "-p", "1", "-K", ":",
			"-H", "i=kcat", "-X", "compression.codec=lz4", "-X", "enable.idempotence=true")
		cmd.Stdin = strings.NewReader(in.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
		check(t, topic, "kcat", "i=kcat")
	})

	t.Run("java", func(t *testing.T) {
		classDir := javaProducer(t)
		topic := testbroker.CreateTopic(t, brokers, 2)
		out := runClient(t, "java", "-cp", classDir, "GatewayProducer", addr, topic, strconv.Itoa(gatewayRecords), "1", "lz4")
		if !strings.Contains(out, "sent ") {
			t.Fatalf("java producer: %s", out)
		}
		check(t, topic, "java", "")
	})
}

// TestGatewayForwardOff: with --forward-batches=false every batch goes
// through the pipeline, even when nothing in it reads or changes records.
func TestGatewayForwardOff(t *testing.T) {
	brokers := testbroker.Brokers(t)
	adminAddr := freeAddr(t)
	addr := startGatewayProc(t, "--brokers", strings.Join(brokers, ","), "--admin", adminAddr, "--forward-batches=false").addr
	topic := testbroker.CreateTopic(t, brokers, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	wantMetrics(t, adminAddr,
		fmt.Sprintf(`kpipe_gateway_topic_forwarded_records_total{topic=%q} 0`, topic),
		fmt.Sprintf(`kpipe_gateway_topic_records_total{outcome="delivered",topic=%q} 10`, topic))
}

// wantMetrics fetches /metrics from the admin endpoint at adminAddr and
// checks that it has each line of wants.
func wantMetrics(t *testing.T, adminAddr string, wants ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+adminAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range wants {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
