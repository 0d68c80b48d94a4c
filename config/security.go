package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TLS is the kafka block's tls block: the connections to the brokers use
// TLS (Kafka's security.protocol SSL, or SASL_SSL with a sasl block).
type TLS struct {
	// CAFile is a PEM file of the certificates that may sign the brokers'
	// (ssl.truststore.location, as PEM); empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate chain and private
	// key, PEM, for brokers that authenticate clients by certificate
	// (ssl.keystore.location, as PEM); both or neither.
	CertFile, KeyFile string
	// ServerName is the name the brokers' certificates must hold; empty:
	// the host of each broker's address.
	ServerName string
	// InsecureSkipVerify accepts any certificate
	// (ssl.endpoint.identification.algorithm = "" and a trust-all
	// manager in Java terms): for tests only.
	InsecureSkipVerify bool

	// The files' contents as read and checked when the file was parsed,
	// so that a run uses what was checked, and a reload sees a change of
	// a file's contents as a change of the block.
	caPEM, certPEM, keyPEM []byte
}

// SASL is the kafka block's sasl block: the client authenticates to the
// brokers (security.protocol SASL_PLAINTEXT, or SASL_SSL with a tls
// block).
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	// (sasl.mechanism).
	Mechanism string
	// Username and Password are the credentials (in Java, the
	// sasl.jaas.config of the mechanism's login module).
	Username, Password string
	// PasswordFile is the file the password was read from (the block's
	// password_file), if it was; the file's contents as read are in
	// Password, without its final line break.
	PasswordFile string
}

// SASLMechanisms are the mechanisms a sasl block may name.
var SASLMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

var tlsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "ca_file"},
		{Name: "cert_file"},
		{Name: "key_file"},
		{Name: "server_name"},
		{Name: "insecure_skip_verify"},
	},
}

var saslSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "mechanism", Required: true},
		{Name: "username", Required: true},
		{Name: "password"},
		{Name: "password_file"},
	},
}

// maxPEMFile bounds what a tls block's file may hold; certificate bundles
// are kilobytes (the Mozilla roots are about 200 KiB).
const maxPEMFile = 16 << 20

// security decodes the tls and sasl blocks of owner's block (the kafka
// block, or a source block); other blocks are left out.
func (d *decoder) security(owner string, blocks hcl.Blocks) (t *TLS, s *SASL) {
	first := map[string]hcl.Range{}
	for _, b := range blocks {
		if b.Type != "tls" && b.Type != "sasl" {
			continue
		}
		if at, dup := first[b.Type]; dup {
			d.errorf(b.DefRange, "Duplicate "+b.Type+" block", "The %s block has at most one %s block; the first one is at %s.", owner, b.Type, at)
			continue
		}
		first[b.Type] = b.DefRange
		if b.Type == "tls" {
			t = d.tls(b)
		} else {
			s = d.sasl(b)
		}
	}
	return t, s
}

func (d *decoder) tls(b *hcl.Block) *TLS {
	content, diags := b.Body.Content(tlsSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	t := &TLS{}
	if attr, ok := a["ca_file"]; ok {
		t.CAFile, t.caPEM = d.pemFile(attr)
		if t.caPEM != nil {
			if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(t.caPEM) {
				d.errorf(attr.Expr.Range(), "Invalid ca_file", "%s holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block).", t.CAFile)
				t.caPEM = nil
			}
		}
	}
	certAttr, keyAttr := a["cert_file"], a["key_file"]
	if certAttr != nil {
		t.CertFile, t.certPEM = d.pemFile(certAttr)
	}
	if keyAttr != nil {
		t.KeyFile, t.keyPEM = d.pemFile(keyAttr)
	}
	switch {
	case (certAttr == nil) != (keyAttr == nil):
		have, missing := certAttr, "key_file"
		if have == nil {
			have, missing = keyAttr, "cert_file"
		}
		d.errorf(have.Range, "Incomplete client certificate", "A client certificate needs both cert_file and key_file; %s is missing.", missing)
	case t.certPEM != nil && t.keyPEM != nil:
		if _, err := tls.X509KeyPair(t.certPEM, t.keyPEM); err != nil {
			d.errorf(keyAttr.Expr.Range(), "Invalid client certificate", "%s and %s are not a certificate and its private key: %s.", t.CertFile, t.KeyFile, err)
		}
	}
	if attr, ok := a["server_name"]; ok {
		t.ServerName, _ = d.string(attr)
	}
	if attr, ok := a["insecure_skip_verify"]; ok {
		t.InsecureSkipVerify, _ = d.bool(attr)
	}
	return t
}

// pemFile reads the file attr names, which must hold at least one PEM
// block, and returns its resolved path and contents (nil contents after an
// error).
func (d *decoder) pemFile(attr *hcl.Attribute) (string, []byte) {
	path, data := d.readFile(attr, maxPEMFile, "a PEM file of certificates or keys")
	if data == nil {
		return path, nil
	}
	if block, _ := pem.Decode(data); block == nil {
		d.errorf(attr.Expr.Range(), "Invalid "+attr.Name, "%s is not PEM: no \"-----BEGIN ...-----\" block in it.", path)
		return path, nil
	}
	return path, data
}

// readFile reads the file attr names, resolved as filePath does, which must
// be a regular file of at most limit bytes (what says what it should be,
// for the error). It returns the resolved path, and the contents or nil
// after an error, which it reports at attr.
func (d *decoder) readFile(attr *hcl.Attribute, limit int64, what string) (string, []byte) {
	s, ok := d.string(attr)
	if !ok {
		return "", nil
	}
	if s == "" {
		d.errorf(attr.Expr.Range(), "Invalid "+attr.Name, "%s must not be empty; remove the attribute instead.", attr.Name)
		return "", nil
	}
	path, ok := d.filePath(attr, s)
	if !ok {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	} else if err == nil && fi.Size() > limit {
		err = fmt.Errorf("%s has %d bytes, more than %s (at most %d)", path, fi.Size(), what, limit)
	}
	var data []byte
	if err == nil {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		detail := err.Error()
		if os.IsNotExist(err) {
			detail = fmt.Sprintf("%s does not exist (relative paths are resolved against the directory of the configuration file).", path)
		}
		d.errorf(attr.Expr.Range(), "Cannot read "+attr.Name, "%s", detail)
		return path, nil
	}
	return path, data
}

func (d *decoder) sasl(b *hcl.Block) *SASL {
	content, diags := b.Body.Content(saslSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	s := &SASL{}
	if attr, ok := a["mechanism"]; ok {
		if m, ok := d.string(attr); ok {
			// Java takes the names in capitals only; any case is the
			// same mechanism here.
			if m = strings.ToUpper(m); d.oneOf(attr, m, SASLMechanisms...) {
				s.Mechanism = m
			}
		}
	}
	pw, pwFile := a["password"], a["password_file"]
	switch {
	case pw == nil && pwFile == nil:
		d.errorf(b.DefRange, "Missing password", "A sasl block needs password (password = env(\"NAME\") keeps it out of the file) or password_file.")
	case pw != nil && pwFile != nil:
		d.errorf(pwFile.Range, "Two passwords", "A sasl block has password or password_file, not both (password is at %s).", pw.Range)
	case pwFile != nil:
		s.PasswordFile, s.Password = d.secretFile(pwFile)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"username", &s.Username}, {"password", &s.Password}} {
		attr, ok := a[f.name]
		if !ok {
			continue
		}
		if v, ok := d.string(attr); ok {
			if v == "" {
				d.errorf(attr.Expr.Range(), "Invalid "+f.name, "The %s is empty. With env(\"NAME\") here, is the variable set?", f.name)
			}
			*f.dst = v
		}
	}
	return s
}

// maxSecretFile bounds what a password_file may hold.
const maxSecretFile = 64 << 10

// secretFile reads the file attr names and returns its resolved path and
// contents without a final line break ("\n" or "\r\n", which an editor or
// `echo` adds); an empty secret is an error.
func (d *decoder) secretFile(attr *hcl.Attribute) (string, string) {
	path, data := d.readFile(attr, maxSecretFile, "a password")
	if data == nil {
		return path, ""
	}
	secret := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if secret == "" {
		d.errorf(attr.Expr.Range(), "Invalid "+attr.Name, "%s is empty.", path)
	}
	return path, secret
}

// ClientOptions returns the franz-go options of the tls and sasl blocks,
// which every client kpipe makes for the kafka block's brokers uses: the
// producer (through pipeline.KgoOptions), the gateway's upstream client,
// `kpipe consume` and a kafka source's consumer. None without the blocks.
func (k *Kafka) ClientOptions() []kgo.Opt { return clientOptions(k.TLS, k.SASL) }

// SourceClientOptions returns the franz-go options of the tls and sasl
// blocks that apply to the consumer of source s: its own, if it has them,
// else the kafka block's.
func (c *Config) SourceClientOptions(s *Source) []kgo.Opt {
	if s.TLS != nil || s.SASL != nil {
		return clientOptions(s.TLS, s.SASL)
	}
	return c.Kafka.ClientOptions()
}

// clientOptions returns the franz-go options of a tls and a sasl block,
// either of which may be nil.
func clientOptions(t *TLS, s *SASL) []kgo.Opt {
	var opts []kgo.Opt
	if t != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		if t.caPEM != nil {
			cfg.RootCAs = x509.NewCertPool()
			cfg.RootCAs.AppendCertsFromPEM(t.caPEM)
		}
		if t.certPEM != nil && t.keyPEM != nil {
			// Checked when parsed (decoder.tls).
			if cert, err := tls.X509KeyPair(t.certPEM, t.keyPEM); err == nil {
				cfg.Certificates = []tls.Certificate{cert}
			}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if s != nil {
		opts = append(opts, kgo.SASL(s.mechanism()))
	}
	return opts
}

// mechanism returns the franz-go mechanism of s.
func (s *SASL) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	default:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	}
}
