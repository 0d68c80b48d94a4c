package main

import (
	"testing"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

func TestMask(t *testing.T) {
	tests := []struct {
		cfg     config
		value   string // "" with null: a null value
		null    bool
		headers []kpipe.Header
		action  kpipe.Action
		want    string
	}{
		{config{}, "card 4111-1111", false, nil, kpipe.Changed, "card ****-****"},
		{config{KeepLast: 4}, "card 4111111111111111 exp 12", false, nil, kpipe.Changed, "card ************1111 exp 12"},
		{config{KeepLast: 4}, "pin 1234", false, nil, kpipe.Unchanged, "pin 1234"},
		{config{}, "no digits", false, nil, kpipe.Unchanged, "no digits"},
		{config{}, "", true, nil, kpipe.Unchanged, ""},
		{config{DropHeader: "internal"}, "x1", false, []kpipe.Header{{Key: "internal"}}, kpipe.Drop, "x1"},
		{config{DropHeader: "internal"}, "x1", false, []kpipe.Header{{Key: "other"}}, kpipe.Changed, "x*"},
	}
	for _, tt := range tests {
		m, err := newMasker(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := &kpipe.ConsumedRecord{Record: kpipe.Record{Headers: tt.headers}}
		if !tt.null {
			r.Value = []byte(tt.value)
		}
		action, err := m.OnConsume(r)
		if err != nil || action != tt.action || string(r.Value) != tt.want || (r.Value == nil) != tt.null {
			t.Errorf("%+v %q: = %v, %v, value %q; want %v, %q", tt.cfg, tt.value, action, err, r.Value, tt.action, tt.want)
		}
	}
	if _, err := newMasker(config{KeepLast: -1}); err == nil {
		t.Error("keep_last -1 accepted")
	}
}
