package topicname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, wantErr string
	}{
		{name: "orders"},
		{name: "a.b_c-D9"},
		{name: strings.Repeat("x", MaxLen)},
		{name: "", wantErr: "empty"},
		{name: strings.Repeat("x", MaxLen+1), wantErr: "250 bytes long"},
		{name: ".", wantErr: "not a topic name"},
		{name: "..", wantErr: "not a topic name"},
		{name: "bad name!", wantErr: `"bad name!" has a character`},
		{name: "caf\xc3\xa9", wantErr: "has a character"},
	}
	for _, tt := range tests {
		err := Check(tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Check(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Check(%q) = %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
}
