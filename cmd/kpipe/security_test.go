package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/internal/testenv"
)

// secureConfig writes a configuration whose kafka block reaches s with TLS
// (the CA, and the client certificate s requires) and SASL with mechanism
// and password, and that produces to topic and reads it in a consumer
// block.
func secureConfig(t *testing.T, s testbroker.Secure, mechanism, password, topic string) string {
	t.Helper()
	return writeFile(t, filepath.Join(t.TempDir(), "secure.hcl"), fmt.Sprintf(`
kafka {
  brokers = [%q]
  tls {
    ca_file   = %q
    cert_file = %q
    key_file  = %q
  }
  sasl {
    mechanism = %q
    username  = %q
    password  = %q
  }
}
pipeline "out" {
  topic = %q
}
consumer "in" {
  topics = [%q]
  start  = "earliest"
}
`, s.Brokers[0], s.CAFile, s.CertFile, s.KeyFile, mechanism, s.User, password, topic, topic))
}

// produceSecure writes n records, values "0" to "n-1", to topic of s.
func produceSecure(t *testing.T, s testbroker.Secure, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(append(s.ClientOpts(), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// readSecure reads n records of topic from s with a client of its own.
func readSecure(t *testing.T, s testbroker.Secure, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(s.ClientOpts(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(got), n, topic)
		}
		got = append(got, fs.Records()...)
	}
	return got
}

// TestSecureBrokers: the kafka block's tls and sasl blocks take kpipe run,
// kpipe consume and the gateway's upstream to a broker that speaks only TLS,
// wants a client certificate and authenticates with SASL, with each
// mechanism; a wrong password is a clear error, and the embedded broker is
// refused to such a configuration.
func TestSecureBrokers(t *testing.T) {
	s := testbroker.SecureCluster(t)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run("run and consume/"+mech, func(t *testing.T) {
			topic := "secure-" + strings.ToLower(mech)
			cfg := secureConfig(t, s, mech, s.Password, topic)
			input := `{"key":"a","value":"1"}` + "\n" + `{"key":"b","value":"2"}` + "\n"
			if r := kpipe(t, "", input, "run", "--config", cfg, "--input", "-"); r.code != 0 || !strings.Contains(r.stderr, "delivered  2") {
				t.Fatalf("run: %s", r)
			}
			if got := readSecure(t, s, topic, 2); string(got[0].Value) != "1" || string(got[1].Value) != "2" {
				t.Errorf("read back %q, %q", got[0].Value, got[1].Value)
			}
			r := kpipe(t, "", "", "consume", "--config", cfg, "--max", "2", "--timeout", testbroker.Timeout().String())
			if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"value":"2"`) {
				t.Errorf("consume: %s", r)
			}
		})
	}
	// A kafka source's consumer connects with the same settings, under
	// both guarantees (at_least_once has a consumer client of its own).
	for _, delivery := range []string{"at_least_once", "exactly_once"} {
		t.Run("source/"+delivery, func(t *testing.T) {
			in, out := "secure-in-"+delivery, "secure-out-"+delivery
			cfg := secureConfig(t, s, "SCRAM-SHA-256", s.Password, out)
			cfg = writeFile(t, cfg, strings.Replace(string(readFile(t, cfg)), `pipeline "out" {`, fmt.Sprintf(`pipeline "out" {
  source "kafka" {
    topics   = [%q]
    group    = %q
    delivery = %q
  }`, in, "g-"+delivery, delivery), 1))
			produceSecure(t, s, in, 10)
			m := startMember(t, cfg, "secure-"+delivery)
			if got := readSecure(t, s, out, 10); len(got) != 10 {
				t.Errorf("read %d records of the output, want 10", len(got))
			}
			m.stop(t, "kpipe run with a kafka source")
		})
	}
	// A source on the secured cluster with its own tls and sasl blocks,
	// writing to a plaintext one: each client gets its cluster's settings.
	t.Run("source on another cluster", func(t *testing.T) {
		sink := testbroker.Brokers(t)
		in, out := "secure-in-other", testbroker.CreateTopic(t, sink, 1)
		cfg := writeFile(t, filepath.Join(t.TempDir(), "k.hcl"), fmt.Sprintf(`kafka {
  brokers = [%q]
}
pipeline "out" {
  topic = %q
  source "kafka" {
    topics  = [%q]
    group   = "g-other"
    brokers = [%q]
    tls {
      ca_file   = %q
      cert_file = %q
      key_file  = %q
    }
    sasl {
      mechanism = "PLAIN"
      username  = %q
      password  = %q
    }
  }
}
`, sink[0], out, in, s.Brokers[0], s.CAFile, s.CertFile, s.KeyFile, s.User, s.Password))
		produceSecure(t, s, in, 10)
		m := startMember(t, cfg, "secure-other")
		if got := testbroker.ReadAll(t, sink, out, 10, false); len(got) != 10 {
			t.Errorf("read %d records of the output, want 10", len(got))
		}
		m.stop(t, "kpipe run with a source on another cluster")
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := secureConfig(t, s, "SCRAM-SHA-256", "not-the-password", "secure-denied")
		r := kpipe(t, "", `{"value":"x"}`+"\n", "run", "--config", cfg, "--input", "-")
		if r.code == 0 || !strings.Contains(r.stderr, "check the sasl block's mechanism, username and password") {
			t.Errorf("run with a wrong password: %s", r)
		}
	})
	t.Run("plaintext to a TLS listener", func(t *testing.T) {
		cfg := writeFile(t, filepath.Join(t.TempDir(), "k.hcl"), fmt.Sprintf("kafka {\n  brokers = [%q]\n}\npipeline \"p\" {\n  topic = \"t\"\n}\n", s.Brokers[0]))
		r := kpipe(t, "", `{"value":"x"}`+"\n", "run", "--config", cfg, "--input", "-")
		if r.code == 0 || !strings.Contains(r.stderr, "if its listener wants TLS or SASL, add a tls or sasl block") {
			t.Errorf("run: %s", r)
		}
	})
	t.Run("embedded broker refused", func(t *testing.T) {
		cfg := writeFile(t, filepath.Join(t.TempDir(), "k.hcl"), `kafka {
  sasl {
    mechanism = "PLAIN"
    username  = "u"
    password  = "p"
  }
}
pipeline "p" {
  topic = "t"
}
`)
		r := kpipe(t, "", `{"value":"x"}`+"\n", "run", "--config", cfg, "--input", "-")
		if r.code != 2 || !strings.Contains(r.stderr, cfg+":1:1: the kafka block has a tls or sasl block but names no brokers") {
			t.Errorf("run: %s", r)
		}
		r = kpipe(t, "", "", "gateway", "--config", cfg, "--listen", "127.0.0.1:0")
		if r.code != 2 || !strings.Contains(r.stderr, "names no brokers") {
			t.Errorf("gateway: %s", r)
		}
	})
	t.Run("gateway upstream", func(t *testing.T) {
		topic := "secure-gateway"
		addr := startGateway(t, "--config", secureConfig(t, s, "SCRAM-SHA-512", s.Password, topic))
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const n = 100
		for i := range n {
			cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := readSecure(t, s, topic, n); len(got) != n {
			t.Errorf("read %d records upstream, want %d", len(got), n)
		}
	})
}

// TestSecureRealKafka: against the SASL_SSL listener of the Apache Kafka
// broker scripts/kafka.sh starts (CI's integration step exports its address
// and CA), kpipe run delivers with each mechanism, and a wrong password
// fails with the broker's answer.
func TestSecureRealKafka(t *testing.T) {
	if os.Getenv("KPIPE_TEST_BROKERS") == "" {
		t.Skip("integration test: runs when KPIPE_TEST_BROKERS is set (see .ci/run); TestSecureBrokers checks the same against kfake")
	}
	addr, ca := os.Getenv("KPIPE_TEST_SASL_SSL_BROKERS"), os.Getenv("KPIPE_TEST_TLS_CA")
	user, pass := os.Getenv("KPIPE_TEST_SASL_USER"), os.Getenv("KPIPE_TEST_SASL_PASSWORD")
	if addr == "" || ca == "" || user == "" || pass == "" {
		testenv.Unavailable(t, "KPIPE_TEST_SASL_SSL_BROKERS, KPIPE_TEST_TLS_CA, KPIPE_TEST_SASL_USER and KPIPE_TEST_SASL_PASSWORD are not all set (eval \"$(scripts/kafka.sh env)\")")
	}
	config := func(t *testing.T, mechanism, password, topic string) string {
		return writeFile(t, filepath.Join(t.TempDir(), "k.hcl"), fmt.Sprintf(`kafka {
  brokers = [%q]
  tls {
    ca_file = %q
  }
  sasl {
    mechanism = %q
    username  = %q
    password  = env("KPIPE_TEST_PASSWORD")
  }
}
pipeline "p" {
  topic = %q
}
consumer "c" {
  topics = [%q]
  start  = "earliest"
}
`, addr, ca, mechanism, user, topic, topic))
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Setenv("KPIPE_TEST_PASSWORD", pass)
			topic := fmt.Sprintf("secure-real-%s-%d", strings.ToLower(mech), time.Now().UnixNano())
			cfg := config(t, mech, pass, topic)
			if r := kpipe(t, "", `{"key":"k","value":"v1"}`+"\n"+`{"key":"k","value":"v2"}`+"\n", "run", "--config", cfg, "--input", "-"); r.code != 0 || !strings.Contains(r.stderr, "delivered  2") {
				t.Fatalf("run: %s", r)
			}
			r := kpipe(t, "", "", "consume", "--config", cfg, "--max", "2", "--timeout", testbroker.Timeout().String())
			if r.code != 0 || !strings.Contains(r.stdout, `"value":"v1"`) || !strings.Contains(r.stdout, `"value":"v2"`) {
				t.Errorf("consume: %s", r)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("KPIPE_TEST_PASSWORD", "not-"+pass)
		r := kpipe(t, "", `{"value":"x"}`+"\n", "run", "--config", config(t, "SCRAM-SHA-512", "", "secure-real-denied"), "--input", "-")
		if r.code == 0 || !strings.Contains(r.stderr, "SASL_AUTHENTICATION_FAILED") {
			t.Errorf("run with a wrong password: %s", r)
		}
	})
}

// TestGatewayTLSListener: with --tls-cert, --tls-key and --tls-client-ca the
// gateway speaks TLS to its clients and takes only those with a certificate
// signed by the CA: franz-go and kcat with one deliver, a client without one
// and a plaintext client do not.
func TestGatewayTLSListener(t *testing.T) {
	c := testbroker.NewCerts(t)
	brokers := testbroker.Brokers(t)
	gw := startGatewayProc(t, "--brokers", strings.Join(brokers, ","),
		"--tls-cert", c.ServerCert, "--tls-key", c.ServerKey, "--tls-client-ca", c.CA)
	addr := gw.addr
	produce := func(t *testing.T, topic string, tlsCfg *tls.Config, n int) error {
		opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
			kgo.RecordDeliveryTimeout(5 * time.Second), kgo.RequestRetries(1)}
		if tlsCfg != nil {
			opts = append(opts, kgo.DialTLSConfig(tlsCfg))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, &kgo.Record{Value: []byte(strconv.Itoa(i))})
		}
		return cl.ProduceSync(ctx, rs...).FirstErr()
	}
	t.Run("franz-go with a certificate", func(t *testing.T) {
		topic := testbroker.CreateTopic(t, brokers, 1)
		if err := produce(t, topic, c.ClientTLS(true), 100); err != nil {
			t.Fatal(err)
		}
		if got := testbroker.ReadAll(t, brokers, topic, 100, false); len(got) != 100 {
			t.Errorf("read %d records upstream, want 100", len(got))
		}
	})
	t.Run("kcat with a certificate", func(t *testing.T) {
		kcatThrough(t, addr, brokers, "-X", "security.protocol=ssl", "-X", "ssl.ca.location="+c.CA,
			"-X", "ssl.certificate.location="+c.ClientCert, "-X", "ssl.key.location="+c.ClientKey)
	})
	t.Run("no client certificate", func(t *testing.T) {
		// First a connection closed before it sends anything, as a
		// load balancer's health check: no warning for it.
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
		if err := produce(t, "tls-refused", c.ClientTLS(false), 1); err == nil {
			t.Error("a client without a certificate produced")
		}
		log := gw.stderr.String()
		if !strings.Contains(log, "closing a client connection: TLS handshake failed") || !strings.Contains(log, "certificate") {
			t.Errorf("no warning of the failed handshake in the gateway's log:\n%s", log)
		}
		if strings.Contains(log, "error=EOF") {
			t.Errorf("a warning for a connection closed before its handshake:\n%s", log)
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		if err := produce(t, "tls-refused", nil, 1); err == nil {
			t.Error("a plaintext client produced")
		}
	})
	t.Run("flags", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--tls-cert", c.ServerCert}, "--tls-cert and --tls-key go together"},
			{[]string{"--tls-client-ca", c.CA}, "--tls-cert and --tls-key go together"},
			{[]string{"--tls-cert", c.ServerCert, "--tls-key", c.ClientKey}, "private key does not match public key"},
			{[]string{"--tls-cert", c.ServerCert, "--tls-key", c.ServerKey, "--tls-client-ca", c.ServerKey}, "--tls-client-ca: " + c.ServerKey + " holds no PEM certificate"},
		} {
			r := kpipe(t, "", "", append([]string{"gateway", "--listen", "127.0.0.1:0"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("gateway %v: %s; want exit 2 and %q", tt.args, r, tt.want)
			}
		}
	})
}

// TestGatewaySASL: with --sasl-users (and TLS) the gateway authenticates
// its clients: franz-go with SCRAM-SHA-512, kcat with SCRAM-SHA-256 and
// kafka-python with PLAIN deliver; a wrong password and a client that does
// not authenticate are refused.
func TestGatewaySASL(t *testing.T) {
	c := testbroker.NewCerts(t)
	brokers := testbroker.Brokers(t)
	users := writeFile(t, filepath.Join(t.TempDir(), "users"), "# the gateway's users\nalice:wonder:land\n\nbob:pw\n")
	gw := startGatewayProc(t, "--brokers", strings.Join(brokers, ","),
		"--tls-cert", c.ServerCert, "--tls-key", c.ServerKey, "--sasl-users", users)
	produce := func(t *testing.T, topic string, opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(gw.addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
			kgo.DialTLSConfig(c.ClientTLS(false)), kgo.RecordDeliveryTimeout(5 * time.Second), kgo.RequestRetries(1)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var rs []*kgo.Record
		for i := range 100 {
			rs = append(rs, &kgo.Record{Value: []byte(strconv.Itoa(i))})
		}
		return cl.ProduceSync(ctx, rs...).FirstErr()
	}
	t.Run("franz-go SCRAM-SHA-512", func(t *testing.T) {
		topic := testbroker.CreateTopic(t, brokers, 1)
		if err := produce(t, topic, kgo.SASL(scram.Auth{User: "alice", Pass: "wonder:land"}.AsSha512Mechanism())); err != nil {
			t.Fatal(err)
		}
		if got := testbroker.ReadAll(t, brokers, topic, 100, false); len(got) != 100 {
			t.Errorf("read %d records upstream, want 100", len(got))
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		err := produce(t, "sasl-refused", kgo.SASL(plain.Auth{User: "alice", Pass: "wonder"}.AsMechanism()))
		if err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
			t.Errorf("produce with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
		if log := gw.stderr.String(); !strings.Contains(log, "SASL authentication failed") || !strings.Contains(log, "alice") {
			t.Errorf("no warning of the failed authentication in the gateway's log:\n%s", log)
		}
	})
	t.Run("no authentication", func(t *testing.T) {
		if err := produce(t, "sasl-refused"); err == nil {
			t.Error("a client that did not authenticate produced")
		}
	})
	t.Run("kcat SCRAM-SHA-256", func(t *testing.T) {
		kcatThrough(t, gw.addr, brokers, "-X", "security.protocol=sasl_ssl", "-X", "sasl.mechanisms=SCRAM-SHA-256",
			"-X", "sasl.username=alice", "-X", "sasl.password=wonder:land", "-X", "ssl.ca.location="+c.CA)
	})
	t.Run("kafka-python PLAIN", func(t *testing.T) {
		python := testenv.RequireTool(t, "python3")
		if out, err := exec.Command(python, "-c", "import kafka").CombinedOutput(); err != nil {
			testenv.Unavailable(t, "python3 cannot import kafka-python: %v: %s", err, out)
		}
		topic := testbroker.CreateTopic(t, brokers, 1)
		script := filepath.Join(plugintest.RepoRoot(t), "scripts", "gateway_produce.py")
		runClient(t, python, script, "--bootstrap", gw.addr, "--topic", topic, "--count", "100",
			"--sasl", "PLAIN:bob:pw", "--cafile", c.CA)
		if got := testbroker.ReadAll(t, brokers, topic, 100, false); len(got) != 100 {
			t.Errorf("read %d records upstream, want 100", len(got))
		}
	})
	// The Java client, the reference implementation of SCRAM, against a
	// gateway that takes SASL without TLS (SASL_PLAINTEXT).
	t.Run("java SCRAM-SHA-512", func(t *testing.T) {
		classDir := javaProducer(t)
		plainGW := startGateway(t, "--brokers", strings.Join(brokers, ","), "--sasl-users", users)
		topic := testbroker.CreateTopic(t, brokers, 1)
		out := runClient(t, "java", "-cp", classDir, "GatewayProducer", plainGW, topic, "100", "0", "none", "sasl=SCRAM-SHA-512:alice:wonder:land")
		if !strings.Contains(out, "sent 100") {
			t.Fatalf("java producer: %s", out)
		}
		if got := testbroker.ReadAll(t, brokers, topic, 100, false); len(got) != 100 {
			t.Errorf("read %d records upstream, want 100", len(got))
		}
	})
	t.Run("users file", func(t *testing.T) {
		bad := writeFile(t, filepath.Join(t.TempDir(), "users"), "alice:pw\nbob\n")
		r := kpipe(t, "", "", "gateway", "--listen", "127.0.0.1:0", "--sasl-users", bad)
		if r.code != 2 || !strings.Contains(r.stderr, bad+":2: want USER:PASSWORD") {
			t.Errorf("gateway with a malformed users file: %s", r)
		}
	})
}

// kcatThrough sends three records with kcat and settings to a new topic
// through the gateway at addr, and checks that upstream has them.
func kcatThrough(t *testing.T, addr string, brokers []string, settings ...string) {
	t.Helper()
	kcat := testenv.RequireTool(t, "kcat")
	topic := testbroker.CreateTopic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, append([]string{"-P", "-b", addr, "-t", topic}, settings...)...)
	cmd.Stdin = strings.NewReader("a\nb\nc\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	if got := testbroker.ReadAll(t, brokers, topic, 3, false); len(got) != 3 {
		t.Errorf("read %d records upstream, want 3", len(got))
	}
}
