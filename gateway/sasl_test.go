package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// runSASL runs franz-go's client side of m against a gateway session for
// mechanism, as the connection would, and returns the session's error (nil:
// authenticated, and the client accepted the server's last message).
func runSASL(t *testing.T, users *saslUsers, mechanism string, m sasl.Mechanism) error {
	t.Helper()
	s := &saslSession{users: users, mechanism: mechanism}
	session, msg, err := m.Authenticate(context.Background(), "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		out, done, err := s.step(msg)
		if err != nil {
			return err
		}
		clientDone, next, err := session.Challenge(out)
		if err != nil {
			t.Fatalf("%s: the client refused the server's message %q: %v", mechanism, out, err)
		}
		if done {
			if !clientDone {
				t.Fatalf("%s: the server is done, the client is not", mechanism)
			}
			return nil
		}
		msg = next
	}
	t.Fatalf("%s: no end after 3 messages", mechanism)
	return nil
}

func TestSASLSession(t *testing.T) {
	users := newSASLUsers(map[string]string{"alice": "wonder:land", "bo,b=": "pw"})
	for _, tt := range []struct {
		name      string
		mechanism string
		m         sasl.Mechanism
		ok        bool
	}{
		{"plain", "PLAIN", plain.Auth{User: "alice", Pass: "wonder:land"}.AsMechanism(), true},
		{"plain, wrong password", "PLAIN", plain.Auth{User: "alice", Pass: "wonder"}.AsMechanism(), false},
		{"plain, unknown user", "PLAIN", plain.Auth{User: "carol", Pass: "wonder:land"}.AsMechanism(), false},
		{"plain, another authorization identity", "PLAIN", plain.Auth{Zid: "bo,b=", User: "alice", Pass: "wonder:land"}.AsMechanism(), false},
		{"scram-256", "SCRAM-SHA-256", scram.Auth{User: "alice", Pass: "wonder:land"}.AsSha256Mechanism(), true},
		{"scram-512", "SCRAM-SHA-512", scram.Auth{User: "alice", Pass: "wonder:land"}.AsSha512Mechanism(), true},
		{"scram, escaped user name", "SCRAM-SHA-256", scram.Auth{User: "bo,b=", Pass: "pw"}.AsSha256Mechanism(), true},
		{"scram-256, wrong password", "SCRAM-SHA-256", scram.Auth{User: "alice", Pass: "wonderland"}.AsSha256Mechanism(), false},
		{"scram-512, unknown user", "SCRAM-SHA-512", scram.Auth{User: "carol", Pass: "wonder:land"}.AsSha512Mechanism(), false},
		// The client hashes with SHA-512, the server expects SHA-256.
		{"scram, other hash", "SCRAM-SHA-256", scram.Auth{User: "alice", Pass: "wonder:land"}.AsSha512Mechanism(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := runSASL(t, users, tt.mechanism, tt.m)
			if tt.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tt.ok && err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestSASLMalformed(t *testing.T) {
	users := newSASLUsers(map[string]string{"alice": "pw"})
	for _, tt := range []struct {
		mechanism string
		msgs      []string
		want      string
	}{
		{"PLAIN", []string{"alice\x00pw"}, "malformed PLAIN message"},
		{"SCRAM-SHA-256", []string{"p=tls-unique,,n=alice,r=abc"}, "channel binding"},
		{"SCRAM-SHA-256", []string{"n,a=bob,n=alice,r=abc"}, "channel binding"},
		{"SCRAM-SHA-256", []string{"n,,r=abc,n=alice"}, "malformed client-first"},
		{"SCRAM-SHA-256", []string{"n,,n=al=ice,r=abc"}, "malformed user name"},
		{"SCRAM-SHA-256", []string{"n,,n=alice,r=abc,m=ext"}, "mandatory extension"},
		{"SCRAM-SHA-256", []string{"n,,n=alice,r=abc", "c=biws,r=other,p=AAAA"}, "does not follow"},
		{"SCRAM-SHA-256", []string{"n,,n=alice,r=abc", "c=biws,r=abc,p=AAAA"}, "does not follow"},
		{"SCRAM-SHA-256", []string{"n,,n=alice,r=abc", "c=biws"}, "malformed client-final"},
	} {
		s := &saslSession{users: users, mechanism: tt.mechanism}
		var err error
		for _, m := range tt.msgs {
			if _, _, err = s.step([]byte(m)); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: %v, want an error with %q", tt.mechanism, tt.msgs, err, tt.want)
		}
	}
}

// FuzzSASL feeds a session up to two client messages: it must not panic,
// and nothing but the user's own credentials may authenticate (for SCRAM,
// which needs a proof computed from the server's random nonce, nothing a
// fuzzer writes does).
func FuzzSASL(f *testing.F) {
	users := newSASLUsers(map[string]string{"alice": "pw"})
	f.Add(uint8(0), []byte("\x00alice\x00pw"), []byte{})
	f.Add(uint8(0), []byte("alice\x00alice\x00pw"), []byte{})
	f.Add(uint8(1), []byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add(uint8(2), []byte("y,,n=al=2Cice,r=x"), []byte("c=eSws,r=x,p="))
	f.Fuzz(func(t *testing.T, mech uint8, first, second []byte) {
		m := saslMechanisms[int(mech)%len(saslMechanisms)]
		s := &saslSession{users: users, mechanism: m}
		_, done, err := s.step(first)
		if err == nil && !done {
			_, done, err = s.step(second)
		}
		if err == nil && done {
			ok := m == "PLAIN" && (string(first) == "\x00alice\x00pw" || string(first) == "alice\x00alice\x00pw")
			if !ok {
				t.Fatalf("%s authenticated with %q, %q", m, first, second)
			}
		}
	})
}
