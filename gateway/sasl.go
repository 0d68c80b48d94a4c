package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASLUsers makes the gateway authenticate its clients with SASL before it
// serves them anything but ApiVersions (the users a broker's JAAS
// configuration lists, in Kafka terms): users maps a user name to its
// password, which every mechanism takes (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512). A client that sends another request first, or fails to
// authenticate, is answered (for SaslAuthenticate, with
// SASL_AUTHENTICATION_FAILED) and its connection closed. PLAIN sends the
// password as it is: use it over TLS (a tls.NewListener given to Serve).
// Default: none, clients are not authenticated.
func SASLUsers(users map[string]string) Option {
	return optionFunc(func(g *Gateway) {
		if len(users) == 0 {
			g.sasl = nil
			return
		}
		g.sasl = newSASLUsers(users)
	})
}

// saslMechanisms are the mechanisms the gateway offers, in the order its
// SaslHandshake answer lists them.
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// scramIterations is the PBKDF2 iteration count of the gateway's SCRAM
// credentials: Kafka's minimum, and what kafka-configs uses by default.
const scramIterations = 4096

// saslUsers holds each user's password, for PLAIN, and the SCRAM
// credentials derived from it, each the first time a client authenticates
// as that user with that mechanism: deriving one takes 4,096 PBKDF2
// iterations (milliseconds), which for a long list of users would delay the
// start, and is done once per user and mechanism, not per connection.
type saslUsers struct {
	plain map[string][]byte

	mu    sync.Mutex
	scram map[string]*scramCred // by mechanism + "\x00" + user
}

// scramCred is a user's SCRAM credential for one hash: what a broker stores
// (RFC 5802 section 3), never the password itself.
type scramCred struct {
	salt                 []byte
	storedKey, serverKey []byte
}

func newSASLUsers(users map[string]string) *saslUsers {
	s := &saslUsers{plain: map[string][]byte{}, scram: map[string]*scramCred{}}
	for u, p := range users {
		s.plain[u] = []byte(p)
	}
	return s
}

// scramCred returns user's credential for mechanism, nil for an unknown
// user.
func (s *saslUsers) scramCred(mechanism, user string) *scramCred {
	pass, ok := s.plain[user]
	if !ok {
		return nil
	}
	key := mechanism + "\x00" + user
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.scram[key]; c != nil {
		return c
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	h := scramHash(mechanism)
	salted, err := pbkdf2.Key(h, string(pass), salt, scramIterations, h().Size())
	if err != nil {
		return nil // only for key lengths FIPS mode refuses
	}
	c := &scramCred{salt: salt, storedKey: hashOf(h, mac(h, salted, "Client Key")), serverKey: mac(h, salted, "Server Key")}
	s.scram[key] = c
	return c
}

func scramHash(mechanism string) func() hash.Hash {
	if mechanism == "SCRAM-SHA-512" {
		return sha512.New
	}
	return sha256.New
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func hashOf(h func() hash.Hash, b []byte) []byte {
	d := h()
	d.Write(b)
	return d.Sum(nil)
}

// errSASL is an authentication that failed; its text goes to the client.
var errSASL = errors.New("authentication failed: invalid credentials")

// saslSession is one connection's authentication: the mechanism its
// SaslHandshake chose, and for SCRAM the state between its two messages.
type saslSession struct {
	users     *saslUsers
	mechanism string
	// SCRAM, after the client's first message: the user, the nonce the
	// server answered with, and the two messages so far (without the
	// GS2 header), which the proof signs.
	user                     string
	nonce                    string
	clientFirst, serverFirst string
	cred                     *scramCred
}

// step takes the client's next message and returns the answer, whether
// authentication is complete, or an error (the client failed).
func (s *saslSession) step(msg []byte) ([]byte, bool, error) {
	switch s.mechanism {
	case "PLAIN":
		return nil, true, s.plain(msg)
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		if s.nonce == "" {
			out, err := s.scramFirst(msg)
			return out, false, err
		}
		out, err := s.scramFinal(msg)
		return out, err == nil, err
	}
	return nil, false, fmt.Errorf("no mechanism chosen")
}

// plain checks a PLAIN message: [authzid] NUL user NUL password (RFC 4616);
// an authorization identity, if given, must be the user.
func (s *saslSession) plain(msg []byte) error {
	parts := bytes.SplitN(msg, []byte{0}, 3)
	if len(parts) != 3 {
		return errors.New("malformed PLAIN message")
	}
	user, pass := string(parts[1]), parts[2]
	s.user = user // the user it claims to be, for the log
	if len(parts[0]) > 0 && string(parts[0]) != user {
		return errSASL
	}
	want, ok := s.users.plain[user]
	if !ok {
		// Compare anyway, so that an unknown user takes as long.
		want = make([]byte, len(pass))
		subtle.ConstantTimeCompare(want, pass)
		return errSASL
	}
	if subtle.ConstantTimeCompare(want, pass) != 1 {
		return errSASL
	}
	return nil
}

// scramFirst takes the client-first message, "n,,n=USER,r=NONCE" (RFC 5802
// section 5.1; no channel binding), and returns the server-first message.
func (s *saslSession) scramFirst(msg []byte) ([]byte, error) {
	m := string(msg)
	gs2, bare, ok := cutN(m, ",", 2)
	if !ok || (gs2 != "n," && gs2 != "y,") {
		return nil, errors.New("SCRAM: channel binding and authorization identities are not supported")
	}
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, errors.New("SCRAM: malformed client-first message")
	}
	for _, a := range attrs[2:] {
		if strings.HasPrefix(a, "m=") {
			return nil, errors.New("SCRAM: mandatory extension not supported")
		}
	}
	user, err := saslName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	snonce := make([]byte, 24)
	_, _ = rand.Read(snonce)
	s.user = user
	s.nonce = attrs[1][2:] + base64.RawStdEncoding.EncodeToString(snonce)
	cred := s.users.scramCred(s.mechanism, user)
	if cred == nil {
		// An unknown user gets a made-up salt (random bytes of
		// its own, not a part of the nonce, which would show it
		// as made up) and fails at the proof, as a known one
		// with a wrong password does.
		salt := make([]byte, 16)
		_, _ = rand.Read(salt)
		cred = &scramCred{salt: salt}
	}
	s.cred = cred
	s.clientFirst = bare
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(cred.salt), scramIterations)
	return []byte(s.serverFirst), nil
}

// scramFinal takes the client-final message, "c=BINDING,r=NONCE,p=PROOF",
// checks the proof and returns the server-final message, "v=SIGNATURE".
func (s *saslSession) scramFinal(msg []byte) ([]byte, error) {
	m := string(msg)
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return nil, errors.New("SCRAM: malformed client-final message")
	}
	withoutProof, proofB64 := m[:i], m[i+3:]
	attrs := strings.Split(withoutProof, ",")
	// The nonce must end with the server's, as Kafka's broker checks it:
	// librdkafka puts its own nonce before the server's whole one, which
	// already starts with it.
	if len(attrs) < 2 || attrs[0] != "c=biws" && attrs[0] != "c=eSws" || !strings.HasPrefix(attrs[1], "r=") || !strings.HasSuffix(attrs[1], s.nonce) {
		return nil, errors.New("SCRAM: the client-final message does not follow the server's")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	h := scramHash(s.mechanism)
	if err != nil || len(proof) != h().Size() || s.cred.storedKey == nil {
		return nil, errSASL
	}
	auth := s.clientFirst + "," + s.serverFirst + "," + withoutProof
	sig := mac(h, s.cred.storedKey, auth)
	clientKey := make([]byte, len(proof))
	for j := range proof {
		clientKey[j] = proof[j] ^ sig[j]
	}
	if subtle.ConstantTimeCompare(hashOf(h, clientKey), s.cred.storedKey) != 1 {
		return nil, errSASL
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(h, s.cred.serverKey, auth))), nil
}

// cutN splits s after its n-th sep: "n,,n=u,r=x" with n 2 is "n," and
// "n=u,r=x" (the GS2 header keeps its first comma).
func cutN(s, sep string, n int) (string, string, bool) {
	at := 0
	for range n {
		i := strings.Index(s[at:], sep)
		if i < 0 {
			return "", "", false
		}
		at += i + len(sep)
	}
	return s[:at-len(sep)], s[at:], true
}

// saslName decodes a SCRAM user name: "=2C" is ",", "=3D" is "=", and any
// other "=" is an error (RFC 5802 section 5.1).
func saslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("SCRAM: malformed user name")
		}
		i += 2
	}
	return b.String(), nil
}

// Kafka error codes of SASL authentication.
const (
	codeUnsupportedSASLMechanism = 33
	codeIllegalSASLState         = 34
	codeSASLAuthenticationFailed = 58
)

// errNotAuthenticated ends a connection that failed to authenticate, or
// sent a request before it did.
var errNotAuthenticated = errors.New("client not authenticated")

// authenticate serves a request of a connection that has not authenticated
// yet: SaslHandshake and SaslAuthenticate are answered; anything else ends
// the connection, as a broker does. A failed authentication is answered
// and then ends it.
func (c *conn) authenticate(p *pending, req kmsg.Request, rest []byte) (*pending, error) {
	h := p.h
	r, ok := rangeOf(saslServed, h.key)
	if !ok {
		c.g.log.Warn("closing a client connection: a request before SASL authentication", "remote", c.st.remote, "client_id", h.clientID, "request", kmsg.NameForKey(h.key))
		return nil, errNotAuthenticated
	}
	if h.version < r.min || h.version > r.max || h.key == 17 && h.version == 0 {
		p, err := c.unsupported(p, req, rest)
		if err == nil {
			err = errNotAuthenticated
		}
		return p, err
	}
	if err := c.decode(p, req, rest); err != nil {
		c.g.mem.give(p.mem)
		c.g.log.Warn("closing a client connection: malformed request", "remote", c.st.remote, "client_id", h.clientID, "request", kmsg.NameForKey(h.key), "version", h.version, "error", err)
		return nil, err
	}
	switch req := req.(type) {
	case *kmsg.SASLHandshakeRequest:
		resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = saslMechanisms
		if !slices.Contains(saslMechanisms, req.Mechanism) {
			resp.ErrorCode = codeUnsupportedSASLMechanism
			c.g.log.Warn("client asked for a SASL mechanism the gateway does not offer", "remote", c.st.remote, "client_id", h.clientID, "mechanism", req.Mechanism)
		} else {
			c.auth = &saslSession{users: c.g.sasl, mechanism: req.Mechanism}
		}
		p.response = func() kmsg.Response { return resp }
		return p, nil
	case *kmsg.SASLAuthenticateRequest:
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		p.response = func() kmsg.Response { return resp }
		if c.auth == nil {
			resp.ErrorCode = codeIllegalSASLState
			msg := "SaslAuthenticate before SaslHandshake"
			resp.ErrorMessage = &msg
			return p, errNotAuthenticated
		}
		out, done, err := c.auth.step(req.SASLAuthBytes)
		if err != nil {
			resp.ErrorCode = codeSASLAuthenticationFailed
			msg := fmt.Sprintf("Authentication failed with SASL mechanism %s: %v", c.auth.mechanism, err)
			resp.ErrorMessage = &msg
			c.g.log.Warn("closing a client connection: SASL authentication failed", "remote", c.st.remote, "client_id", h.clientID, "mechanism", c.auth.mechanism, "user", c.auth.user, "error", err)
			return p, errNotAuthenticated
		}
		resp.SASLAuthBytes = out
		if done {
			c.authenticated = true
			user := c.auth.user
			c.st.user.Store(&user)
			c.auth = nil
		}
		return p, nil
	}
	return nil, errNotAuthenticated
}

// rangeOf returns the range of key in list.
func rangeOf(list []apiRange, key int16) (apiRange, bool) {
	for _, r := range list {
		if r.key == key {
			return r, true
		}
	}
	return apiRange{}, false
}
