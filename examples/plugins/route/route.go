package main

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/kpipe/kpipe/examples/plugins/internal/jsonscan"
	kpipe "github.com/kpipe/kpipe/sdk/go"
)

// config is the plugin's JSON configuration.
type config struct {
	Field           string           `json:"field"`
	Routes          map[string]int32 `json:"routes"`
	KeyPrefixRoutes map[string]int32 `json:"key_prefix_routes"`
}

// prefixRoute is one key prefix and its partition.
type prefixRoute struct {
	prefix    []byte
	partition int32
}

// router chooses partitions by the configured rules.
type router struct {
	field    jsonscan.Path // nil: no field rule
	routes   map[string]int32
	prefixes []prefixRoute // longest first

	// Reused from record to record.
	value []byte // the value being walked
	match []byte // the text of the field, once found
	found bool
}

// newRouter validates cfg.
func newRouter(cfg config) (*router, error) {
	if cfg.Field == "" && len(cfg.Routes) > 0 {
		return nil, errors.New(`route: "routes" needs "field"`)
	}
	if cfg.Field != "" && len(cfg.Routes) == 0 {
		return nil, errors.New(`route: "field" needs "routes"`)
	}
	if cfg.Field == "" && len(cfg.KeyPrefixRoutes) == 0 {
		return nil, errors.New(`route: nothing to do: set "field" and "routes", or "key_prefix_routes"`)
	}
	r := &router{routes: cfg.Routes}
	if cfg.Field != "" {
		p, err := jsonscan.ParsePath(cfg.Field)
		if err != nil {
			return nil, fmt.Errorf("route: field: %w", err)
		}
		r.field = p
	}
	for v, p := range cfg.Routes {
		if p < 0 {
			return nil, fmt.Errorf("route: routes: %q maps to negative partition %d", v, p)
		}
	}
	for prefix, p := range cfg.KeyPrefixRoutes {
		if p < 0 {
			return nil, fmt.Errorf("route: key_prefix_routes: %q maps to negative partition %d", prefix, p)
		}
		if prefix == "" {
			return nil, errors.New("route: key_prefix_routes: empty prefix (it would match every key)")
		}
		r.prefixes = append(r.prefixes, prefixRoute{[]byte(prefix), p})
	}
	sort.Slice(r.prefixes, func(i, j int) bool {
		a, b := r.prefixes[i].prefix, r.prefixes[j].prefix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return bytes.Compare(a, b) < 0
	})
	return r, nil
}

// Partition returns the partition of the first rule that matches rec, or
// kpipe.DefaultPartition.
func (r *router) Partition(rec *kpipe.Record, numPartitions int32) (int32, error) {
	if name, p, ok := r.byField(rec.Value); ok {
		return check(p, numPartitions, "field value", name)
	}
	if rec.Key != nil {
		for _, pr := range r.prefixes {
			if bytes.HasPrefix(rec.Key, pr.prefix) {
				return check(pr.partition, numPartitions, "key prefix", string(pr.prefix))
			}
		}
	}
	return kpipe.DefaultPartition, nil
}

// byField returns the route of the configured field of a JSON value, if it
// has one.
func (r *router) byField(value []byte) (name string, partition int32, ok bool) {
	if r.field == nil || value == nil {
		return "", 0, false
	}
	value = stripWireHeader(value)
	r.match, r.found, r.value = r.match[:0], false, value
	err := jsonscan.Walk(value, r.visit)
	r.value = nil
	if err != nil || !r.found {
		return "", 0, false
	}
	partition, ok = r.routes[string(r.match)] // the conversion does not allocate
	if !ok {
		return "", 0, false
	}
	return string(r.match), partition, true
}

// visit remembers the text of the first string or number at the field's path.
func (r *router) visit(v *jsonscan.Value) {
	if r.found || !r.field.Match(v.Path) {
		return
	}
	switch v.Kind {
	case jsonscan.String:
		r.match = jsonscan.AppendUnquoted(r.match, r.value[v.Start:v.End])
	case jsonscan.Number:
		r.match = append(r.match, r.value[v.Start:v.End]...)
	default:
		return
	}
	r.found = true
}

// confluentHeaderLen is the length of the Confluent wire-format header: the
// magic byte 0 and a 4-byte schema id.
const confluentHeaderLen = 5

// stripWireHeader returns value without its Confluent wire-format header, if
// it has one. The partitioner sees serialized values, and a JSON document
// never starts with a zero byte, so the test is unambiguous: field routes
// work behind the schemaprefix serializer too.
func stripWireHeader(value []byte) []byte {
	if len(value) >= confluentHeaderLen && value[0] == 0 {
		return value[confluentHeaderLen:]
	}
	return value
}

// check returns p if the topic has it, and an error naming the route if not.
func check(p, numPartitions int32, rule, name string) (int32, error) {
	if p >= numPartitions {
		return 0, fmt.Errorf("route: %s %q maps to partition %d, but the topic has %d partitions", rule, name, p, numPartitions)
	}
	return p, nil
}
