package crossclient

import (
	"slices"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/plugins"
)

func TestParseKcatFormat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []Record
		wantErr string
	}{
		{name: "empty output", in: "", want: nil},
		{
			name: "null, empty and binary keys and values",
			in: "0 0 -1 -1\n\n" +
				"1 7 0 0\n\n" +
				"2 9 3 4\n\x00\n\xffa\nb\"\n",
			want: []Record{
				{Partition: 0, Offset: 0},
				{Partition: 1, Offset: 7, Key: []byte{}, Value: []byte{}},
				{Partition: 2, Offset: 9, Key: []byte("\x00\n\xff"), Value: []byte("a\nb\"")},
			},
		},
		{name: "value shorter than its length", in: "0 0 1 5\nkab\n", wantErr: "value of p0@0"},
		{name: "garbage header", in: "x y\n", wantErr: "record header"},
		{name: "missing newline", in: "0 0 1 1\nkvX", wantErr: "no newline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKcatFormat([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := Diff(tc.want, got); d != nil {
				t.Fatalf("differences:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

func TestParseKcatJSONHeaders(t *testing.T) {
	in := `{"topic":"t","partition":1,"offset":4,"headers":["a","1","a","","n",null],"key":"k","payload":"v"}
{"topic":"t","partition":0,"offset":2,"key":null,"payload":null}
`
	got, err := parseKcatJSONHeaders([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]int64][]plugins.Header{
		{1, 4}: {{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte{}}, {Key: "n"}},
		{0, 2}: nil,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		a, b := Record{Headers: w}, Record{Headers: g}
		if !ok || !a.Equal(b) {
			t.Errorf("p%d@%d: headers %v, want %v", k[0], k[1], b, a)
		}
	}

	if _, err := parseKcatJSONHeaders([]byte(`{"partition":0,"offset":0,"headers":["odd"]}`)); err == nil {
		t.Error("odd header list: no error")
	}
}

func TestDiff(t *testing.T) {
	r := func(p int32, o int64, key string) Record { return Record{Partition: p, Offset: o, Key: []byte(key)} }
	for _, tc := range []struct {
		name      string
		want, got []Record
		diff      []string
	}{
		{name: "equal", want: []Record{r(0, 0, "a"), r(1, 0, "b")}, got: []Record{r(0, 0, "a"), r(1, 0, "b")}},
		{name: "both empty"},
		{name: "missing", want: []Record{r(0, 0, "a"), r(0, 1, "b")}, got: []Record{r(0, 1, "b")},
			diff: []string{`missing:    p0@0 key="a" value=null`}},
		{name: "unexpected", want: []Record{r(0, 0, "a")}, got: []Record{r(0, 0, "a"), r(2, 5, "z")},
			diff: []string{`unexpected: p2@5 key="z" value=null`}},
		{name: "different key", want: []Record{r(0, 0, "a")}, got: []Record{r(0, 0, "b")},
			diff: []string{`want:       p0@0 key="a" value=null`, `got:        p0@0 key="b" value=null`}},
		{name: "null is not empty", want: []Record{{Value: []byte{}}}, got: []Record{{}},
			diff: []string{`want:       p0@0 key=null value=""`, `got:        p0@0 key=null value=null`}},
		{name: "header order counts",
			want: []Record{{Headers: []plugins.Header{{Key: "a"}, {Key: "b"}}}},
			got:  []Record{{Headers: []plugins.Header{{Key: "b"}, {Key: "a"}}}},
			diff: []string{`want:       p0@0 key=null value=null "a"=null "b"=null`, `got:        p0@0 key=null value=null "b"=null "a"=null`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(tc.want, tc.got); !slices.Equal(got, tc.diff) {
				t.Errorf("Diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.diff, "\n"))
			}
		})
	}
}
