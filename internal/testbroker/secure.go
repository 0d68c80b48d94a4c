package testbroker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Secure is an in-process kfake cluster that speaks TLS only, requires a
// client certificate signed by its CA, and authenticates clients with
// SASL, and the PEM files a client needs.
type Secure struct {
	Brokers []string
	// CAFile holds the CA certificate that signed the broker's and the
	// client's certificates; CertFile and KeyFile the client's.
	CAFile, CertFile, KeyFile string
	// User and Password are accepted with PLAIN, SCRAM-SHA-256 and
	// SCRAM-SHA-512.
	User, Password string

	tlsCfg *tls.Config
}

// Certs are PEM files for TLS tests: a CA, a server certificate for
// 127.0.0.1 and a client certificate, both signed by the CA, and their keys
// (PKCS#8).
type Certs struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string

	ca, server, client   *x509.Certificate
	serverKey, clientKey *ecdsa.PrivateKey
}

// NewCerts writes a Certs into a temporary directory of the test.
func NewCerts(tb testing.TB) Certs {
	tb.Helper()
	dir := tb.TempDir()
	ca, caKey := newCert(tb, nil, nil, "kpipe test CA", true)
	server, serverKey := newCert(tb, ca, caKey, "127.0.0.1", false)
	client, clientKey := newCert(tb, ca, caKey, "kpipe test client", false)
	return Certs{
		CA:         writePEM(tb, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw),
		ServerCert: writePEM(tb, filepath.Join(dir, "server.pem"), "CERTIFICATE", server.Raw),
		ServerKey:  writePEM(tb, filepath.Join(dir, "server-key.pem"), "PRIVATE KEY", marshalKey(tb, serverKey)),
		ClientCert: writePEM(tb, filepath.Join(dir, "client.pem"), "CERTIFICATE", client.Raw),
		ClientKey:  writePEM(tb, filepath.Join(dir, "client-key.pem"), "PRIVATE KEY", marshalKey(tb, clientKey)),
		ca:         ca, server: server, client: client,
		serverKey: serverKey, clientKey: clientKey,
	}
}

// ClientTLS is the TLS configuration of a client that trusts the CA and,
// with withCert, presents the client certificate.
func (c Certs) ClientTLS(withCert bool) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{c.client.Raw}, PrivateKey: c.clientKey}}
	}
	return cfg
}

// SecureCluster starts a Secure cluster, shut down when the test ends; its
// files are in a temporary directory.
func SecureCluster(tb testing.TB) Secure {
	tb.Helper()
	c := NewCerts(tb)
	s := Secure{CAFile: c.CA, CertFile: c.ClientCert, KeyFile: c.ClientKey, User: "kpipe", Password: "kpipe-secret"}
	pool := x509.NewCertPool()
	pool.AddCert(c.ca)
	cl, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{c.server.Raw}, PrivateKey: c.serverKey}},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		}),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", s.User, s.Password),
		kfake.Superuser("SCRAM-SHA-256", s.User, s.Password),
		kfake.Superuser("SCRAM-SHA-512", s.User, s.Password),
		kfake.AllowAutoTopicCreation())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	s.Brokers = cl.ListenAddrs()
	s.tlsCfg = c.ClientTLS(true)
	return s
}

// ClientOpts are the options of a franz-go client of the cluster (TLS with
// the client certificate, SCRAM-SHA-512), for tests to read and write it
// directly.
func (s Secure) ClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(s.Brokers...), kgo.DialTLSConfig(s.tlsCfg.Clone()),
		kgo.SASL(scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism())}
}

// newCert makes a certificate for name (an IP address becomes its
// subjectAltName), signed by parent, or self-signed if parent is nil.
func newCert(tb testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key
}

func marshalKey(tb testing.TB, key *ecdsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func writePEM(tb testing.TB, path, typ string, der []byte) string {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
