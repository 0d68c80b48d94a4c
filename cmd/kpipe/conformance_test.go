package main

import (
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
)

// TestPluginConformance runs plugin conformance on conforming modules, which
// must pass every check, and on modules that break the ABI in one way each,
// which must fail the check that catches it. (The SDK examples of every
// language are checked by make sdk-conformance.)
func TestPluginConformance(t *testing.T) {
	tests := []struct {
		module string
		code   int
		want   []string
	}{
		{"examples/plugins/wat/noop.wat", 0, []string{"ok    on_send", "ok    on_ack", "ok    batch", "ok    determinism", "conformance: 6 passed, 0 failed"}},
		{"examples/plugins/wat/keyhash.wat", 0, []string{"ok    partition", "ok    batch", "ok    determinism", "conformance: 5 passed, 0 failed"}},
		{"examples/plugins/wat/mask.wat", 0, []string{"ABI v2, declares consume-interceptor", "ok    on_consume", "ok    batch", "ok    determinism", "conformance: 5 passed, 0 failed"}},
		{"wasmhost/testdata/consume.wat", 0, []string{"ok    on_consume", "ok    deserialize   12 test records, no fault, 11 reported an error", "conformance: 7 passed, 0 failed"}},
		{"wasmhost/testdata/consume_v1.wat", 1, []string{"FAIL  load", "a kind of ABI v2", "export kpipe_abi_v2"}},
		{"wasmhost/testdata/nonconforming_batch.wat", 1, []string{"ok    on_send", "FAIL  batch         record \"minimal\": kpipe_on_send_batch gave drop, not continue"}},
		{"wasmhost/testdata/nonconforming_buffer.wat", 1, []string{"FAIL  on_send       record \"256 KiB\": FAULT (invalid output): kpipe_buffer"}},
		{"wasmhost/testdata/nonconforming_random.wat", 1, []string{"ok    partition", "FAIL  determinism"}},
		{"wasmhost/testdata/trap.wat", 1, []string{"FAIL  on_send       record \"minimal\": FAULT (trap)", "FAIL  on_ack"}},
		{"wasmhost/testdata/mistyped_export.wat", 1, []string{"FAIL  load", "kpipe_on_send has type (i32) -> i32, want (i32) -> i64"}},
		{"wasmhost/testdata/missing_export.wat", 1, []string{"FAIL  load", "missing export kpipe_serialize"}},
		{"wasmhost/testdata/init_error.wat", 1, []string{"FAIL  init"}},
		{"wasmhost/testdata/command.wat", 1, []string{"FAIL  load", "WASI command"}},
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			r := kpipe(t, "", "", "plugin", "conformance", plugintest.WAT(t, tt.module))
			if r.code != tt.code {
				t.Errorf("want exit %d, got %s", tt.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}
