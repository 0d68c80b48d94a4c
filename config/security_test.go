package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/testbroker"
)

func TestParseSecurity(t *testing.T) {
	s := testbroker.SecureCluster(t)
	dir := t.TempDir()
	// Relative paths are resolved against the file's directory.
	for _, f := range []string{s.CAFile, s.CertFile, s.KeyFile} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := `kafka {
  brokers = ["b:9093"]
  tls {
    ca_file     = "ca.pem"
    cert_file   = "client.pem"
    key_file    = "client-key.pem"
    server_name = "kafka.internal"
  }
  sasl {
    mechanism = "scram-sha-512"
    username  = "kpipe"
    password  = env("KPIPE_TEST_SASL_PASSWORD")
  }
}
pipeline "p" {
  topic = "t"
}
`
	t.Setenv("KPIPE_TEST_SASL_PASSWORD", "secret")
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tl, sa := cfg.Kafka.TLS, cfg.Kafka.SASL
	if tl == nil || tl.CAFile != filepath.Join(dir, "ca.pem") || tl.CertFile != filepath.Join(dir, "client.pem") ||
		tl.KeyFile != filepath.Join(dir, "client-key.pem") || tl.ServerName != "kafka.internal" || tl.InsecureSkipVerify {
		t.Errorf("tls: %+v", tl)
	}
	if sa == nil || sa.Mechanism != "SCRAM-SHA-512" || sa.Username != "kpipe" || sa.Password != "secret" {
		t.Errorf("sasl: %+v", sa)
	}
	if n := len(cfg.Kafka.ClientOptions()); n != 2 {
		t.Errorf("%d client options, want 2 (TLS and SASL)", n)
	}
	opts, err := cfg.Kafka.Options()
	if err != nil || len(opts) != 2 { // brokers, and the client options
		t.Errorf("Options: %d options, %v; want 2", len(opts), err)
	}
	// password_file: the file's contents without the final line break.
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src = strings.Replace(src, `password  = env("KPIPE_TEST_SASL_PASSWORD")`, `password_file = "pw"`, 1)
	if cfg, diags = Parse([]byte(src), filepath.Join(dir, "k.hcl")); diags.HasErrors() {
		t.Fatal(diags)
	}
	if sa := cfg.Kafka.SASL; sa.Password != "s3cret" || sa.PasswordFile != filepath.Join(dir, "pw") {
		t.Errorf("sasl with password_file: %+v", sa)
	}
	if none := (&Kafka{}).ClientOptions(); len(none) != 0 {
		t.Errorf("%d client options without tls and sasl blocks", len(none))
	}
}

func TestParseSecurityErrors(t *testing.T) {
	s := testbroker.SecureCluster(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := testbroker.SecureCluster(t) // a key that is not the certificate's
	tests := []struct {
		name, body string
		want       []string
	}{
		{"missing file", `tls { ca_file = "nope.pem" }`,
			[]string{`2:19: error: Cannot read ca_file: ` + filepath.Join(dir, "nope.pem") + ` does not exist (relative paths are resolved against the directory of the configuration file).`}},
		{"not PEM", `tls { ca_file = "not.pem" }`,
			[]string{`2:19: error: Invalid ca_file: ` + notPEM + ` is not PEM`}},
		{"no certificate in the CA file", `tls { ca_file = "` + s.KeyFile + `" }`,
			[]string{`2:19: error: Invalid ca_file: ` + s.KeyFile + ` holds no PEM certificate`}},
		{"empty path", `tls { ca_file = "" }`,
			[]string{`2:19: error: Invalid ca_file: ca_file must not be empty`}},
		{"certificate without key", `tls { cert_file = "` + s.CertFile + `" }`,
			[]string{`2:9: error: Incomplete client certificate: A client certificate needs both cert_file and key_file; key_file is missing.`}},
		{"key of another certificate", "tls {\n    cert_file = \"" + s.CertFile + "\"\n    key_file = \"" + other.KeyFile + "\"\n  }",
			[]string{`4:16: error: Invalid client certificate: ` + s.CertFile + ` and ` + other.KeyFile + ` are not a certificate and its private key`}},
		{"unknown attribute", `tls { ca = "x" }`, []string{`2:9: error: Unsupported argument`}},
		{"duplicate", "tls {}\n  tls {}", []string{`3:3: error: Duplicate tls block: The kafka block has at most one tls block; the first one is at`}},
		{"mechanism", `sasl {
    mechanism = "SCRAM-SHA256"
    username  = "u"
    password  = "p"
  }`, []string{`3:17: error: Invalid mechanism: mechanism must be "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512", not "SCRAM-SHA256". Did you mean "SCRAM-SHA-256"?`}},
		{"empty username", `sasl {
    mechanism = "PLAIN"
    username  = env("KPIPE_TEST_UNSET_USER", "")
    password  = "p"
  }`, []string{`4:17: error: Invalid username: The username is empty. With env("NAME") here, is the variable set?`}},
		{"missing password", `sasl {
    mechanism = "PLAIN"
    username  = "u"
  }`, []string{`2:3: error: Missing password: A sasl block needs password (password = env("NAME") keeps it out of the file) or password_file.`}},
		{"two passwords", `sasl {
    mechanism     = "PLAIN"
    username      = "u"
    password      = "p"
    password_file = "pw"
  }`, []string{`6:5: error: Two passwords: A sasl block has password or password_file, not both (password is at`}},
		{"missing password file", `sasl {
    mechanism     = "PLAIN"
    username      = "u"
    password_file = "nope"
  }`, []string{`5:21: error: Cannot read password_file: ` + filepath.Join(dir, "nope") + ` does not exist`}},
		{"empty password file", `sasl {
    mechanism     = "PLAIN"
    username      = "u"
    password_file = "empty"
  }`, []string{`5:21: error: Invalid password_file: ` + filepath.Join(dir, "empty") + ` is empty.`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "k.hcl")
			wantDiagnostics(t, file, "kafka {\n  "+tt.body+"\n}\npipeline \"p\" {\n  topic = \"t\"\n}\n", tt.want)
		})
	}
}

// A source block's own tls and sasl blocks are for another cluster: they
// apply to its consumer instead of the kafka block's, and need its brokers.
func TestParseSourceSecurity(t *testing.T) {
	s := testbroker.SecureCluster(t)
	dir := t.TempDir()
	src := `kafka {
  brokers = ["sink:9092"]
  sasl {
    mechanism = "PLAIN"
    username  = "sink-user"
    password  = "p"
  }
}
pipeline "p" {
  topic = "out"
  source "kafka" {
    topics  = ["in"]
    group   = "g"
    brokers = ["other:9093"]
    tls { ca_file = "` + s.CAFile + `" }
    sasl {
      mechanism = "SCRAM-SHA-256"
      username  = "source-user"
      password  = "q"
    }
  }
}
`
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, _ := cfg.Pipeline("p")
	if p.Source.TLS == nil || p.Source.SASL == nil || p.Source.SASL.Username != "source-user" {
		t.Fatalf("source: %+v", p.Source)
	}
	if n := len(cfg.SourceClientOptions(p.Source)); n != 2 {
		t.Errorf("%d client options for the source, want 2 (its TLS and SASL)", n)
	}
	if n := len(cfg.SourceClientOptions(&Source{})); n != 1 {
		t.Errorf("%d client options for a source without blocks, want the kafka block's 1 (SASL)", n)
	}
	wantDiagnostics(t, filepath.Join(dir, "k.hcl"), strings.Replace(src, `    brokers = ["other:9093"]
`, "", 1), []string{`14:5: error: Security of the kafka block's cluster: The source reads the kafka block's brokers`})
}
