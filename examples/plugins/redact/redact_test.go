package main

import (
	"strings"
	"testing"

	kpipe "github.com/kpipe/kpipe/sdk/go"
)

func TestNewRedactorRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
		want string
	}{
		{"nothing", config{}, "nothing to do"},
		{"bad field", config{Fields: []string{"a..b"}}, "fields: JSON path"},
		{"bad required", config{DropIfMissing: "."}, "drop_if_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newRedactor(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newRedactor error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestOnSend(t *testing.T) {
	r, err := newRedactor(config{
		Fields:        []string{"ssn", "card.number", "items.card"},
		Replacement:   "***",
		DropIfMissing: "user_id",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		value     []byte
		want      kpipe.Action
		wantValue string // for Changed
	}{
		{"masks nested", []byte(`{"user_id":7,"ssn":"123-45-6789","card":{"number":"4111","exp":"12/30"}}`), kpipe.Changed,
			`{"user_id":7,"ssn":"***","card":{"number":"***","exp":"12/30"}}`},
		{"keeps formatting", []byte("{ \"user_id\": 1.50,\n  \"ssn\" : 123 }"), kpipe.Changed,
			"{ \"user_id\": 1.50,\n  \"ssn\" : \"***\" }"},
		{"masks in arrays", []byte(` {"user_id":1,"items":[{"card":"a"},{"sku":2},{"card":{"n":1}}]}`), kpipe.Changed,
			` {"user_id":1,"items":[{"card":"***"},{"sku":2},{"card":"***"}]}`},
		{"outer field covers inner", []byte(`{"user_id":1,"card":{"number":"1"},"ssn":{"card":{"number":2}}}`), kpipe.Changed,
			`{"user_id":1,"card":{"number":"***"},"ssn":"***"}`},
		{"no field: unchanged", []byte(`{"user_id":1,"name":"x"}`), kpipe.Unchanged, ""},
		{"missing required: dropped", []byte(`{"ssn":"1"}`), kpipe.Drop, ""},
		{"null required counts as present", []byte(`{"user_id":null,"ssn":"1"}`), kpipe.Changed, `{"user_id":null,"ssn":"***"}`},
		{"plain text", []byte("hello"), kpipe.Unchanged, ""},
		{"broken JSON", []byte(`{"ssn":`), kpipe.Unchanged, ""},
		{"JSON string", []byte(`"ssn"`), kpipe.Unchanged, ""},
		{"null value", nil, kpipe.Unchanged, ""},
		{"empty value", []byte{}, kpipe.Unchanged, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := view(t, &kpipe.Record{Topic: "t", Value: tt.value})
			got, err := r.OnSendView(rec)
			if err != nil || got != tt.want {
				t.Fatalf("OnSendView = %v, %v; want %v", got, err, tt.want)
			}
			if tt.want == kpipe.Changed && string(rec.Value()) != tt.wantValue {
				t.Fatalf("value = %s, want %s", rec.Value(), tt.wantValue)
			}
		})
	}
}

func TestOnlyDrop(t *testing.T) {
	r, err := newRedactor(config{DropIfMissing: "id"})
	if err != nil {
		t.Fatal(err)
	}
	for value, want := range map[string]kpipe.Action{`{"id":1}`: kpipe.Unchanged, `{"x":1}`: kpipe.Drop, `[]`: kpipe.Drop} {
		if got, _ := r.OnSendView(view(t, &kpipe.Record{Value: []byte(value)})); got != want {
			t.Errorf("OnSendView(%s) = %v, want %v", value, got, want)
		}
	}
}

func TestReplacementIsEscaped(t *testing.T) {
	r, err := newRedactor(config{Fields: []string{"a"}, Replacement: `"quoted"`})
	if err != nil {
		t.Fatal(err)
	}
	rec := view(t, &kpipe.Record{Value: []byte(`{"a":1}`)})
	if a, err := r.OnSendView(rec); a != kpipe.Changed || err != nil {
		t.Fatalf("OnSendView = %v, %v", a, err)
	}
	if want := `{"a":"\"quoted\""}`; string(rec.Value()) != want {
		t.Fatalf("value = %s, want %s", rec.Value(), want)
	}
}

func TestOverlappingFields(t *testing.T) {
	r, err := newRedactor(config{Fields: []string{"card.number", "card"}, Replacement: "x"})
	if err != nil {
		t.Fatal(err)
	}
	rec := view(t, &kpipe.Record{Value: []byte(`{"card":{"number":"4111","exp":"1"},"n":1}`)})
	if a, err := r.OnSendView(rec); a != kpipe.Changed || err != nil {
		t.Fatalf("OnSendView = %v, %v", a, err)
	}
	if want := `{"card":"x","n":1}`; string(rec.Value()) != want {
		t.Fatalf("value = %s, want %s", rec.Value(), want)
	}
}

func TestNestedAndRepeatedFields(t *testing.T) {
	r, err := newRedactor(config{Fields: []string{"a.b", "a", "c", "c", "d.e"}, Replacement: "x", DropIfMissing: "c"})
	if err != nil {
		t.Fatal(err)
	}
	rec := view(t, &kpipe.Record{Value: []byte(`{"d":[{"e":1},{"f":2},{"e":[3,{"e":4}]}],"a":[{"b":1},{"a":{"b":2}}],"c":[1,[2]],"z":0}`)})
	if a, err := r.OnSendView(rec); a != kpipe.Changed || err != nil {
		t.Fatalf("OnSendView = %v, %v", a, err)
	}
	if want := `{"d":[{"e":"x"},{"f":2},{"e":"x"}],"a":"x","c":"x","z":0}`; string(rec.Value()) != want {
		t.Fatalf("value = %s, want %s", rec.Value(), want)
	}
}

// TestOnSendDoesNotAllocate checks that masking a record, once the buffers
// have grown, allocates nothing in the plugin: redact is all of OnSendView
// but the view's getter and setter, whose log the SDK reuses from record to
// record.
func TestOnSendDoesNotAllocate(t *testing.T) {
	r, err := newRedactor(config{Fields: []string{"card.number", "card.cvv"}, Replacement: "***", DropIfMissing: "customer"})
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(`{"customer":"c00001","amount":1.5,"card":{"number":"4111111111111111","cvv":"123"},"note":"xxxxxxxxxx"}`)
	var out []byte
	allocs := testing.AllocsPerRun(100, func() {
		var a kpipe.Action
		if a, out = r.redact(value); a != kpipe.Changed {
			t.Fatalf("redact = %v", a)
		}
	})
	if allocs != 0 {
		t.Fatalf("redact allocates %v times per record", allocs)
	}
	if want := `{"customer":"c00001","amount":1.5,"card":{"number":"***","cvv":"***"},"note":"xxxxxxxxxx"}`; string(out) != want {
		t.Fatalf("value = %s, want %s", out, want)
	}
}

// view returns a RecordView of r.
func view(t *testing.T, r *kpipe.Record) *kpipe.RecordView {
	t.Helper()
	v, err := kpipe.NewRecordView(r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
