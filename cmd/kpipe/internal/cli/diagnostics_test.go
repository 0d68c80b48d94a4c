package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
)

// TestConfigDiagnostics gives validate and run the same configurations, each
// with one mistake, and wants from both exactly one diagnostic, the same one,
// at the exact FILE:LINE:COL of the mistake: one diagnostics path, no
// cascades. In src and want, $W is the directory of the WAT example
// plugins, $T that of wasmhost's test modules and $D the test's directory.
// The case of a Go guest is cmd/kpipe's TestValidateGoGuestMemory, outside
// the packages CI runs with -race, where compiling a Go guest takes minutes.
func TestConfigDiagnostics(t *testing.T) {
	root := plugintest.RepoRoot(t)
	wat := filepath.Join(root, "examples", "plugins", "wat")
	testdata := filepath.Join(root, "wasmhost", "testdata")
	dir := t.TempDir()
	for name, content := range map[string]string{"notwasm.wasm": "hello", "empty.wasm": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "adir.wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KPIPE_DIAG_SET", "x")
	// 65 interceptors: one more than a pipeline may have.
	var many strings.Builder
	for i := range 65 {
		fmt.Fprintf(&many, "  interceptor \"i%d\" { module = \"$W/noop.wasm\" }\n", i)
	}
	cache := t.TempDir() // compiled modules, shared by the cases
	expand := strings.NewReplacer("$W", wat, "$T", testdata, "$D", dir).Replace

	tests := []struct {
		name string
		src  string
		want string // LINE:COL: error: SUMMARY: DETAIL
	}{
		// Syntax.
		{"unterminated heredoc", "pipeline \"p\" {\n  topic = \"t\"\n  interceptor \"i\" {\n    module = \"$W/noop.wasm\"\n    config = { text = <<EOT\nhello\n  }\n}\n}\n",
			`5:23: error: Unterminated heredoc: The heredoc opened here with <<EOT has no closing line holding only EOT (spaces before it are allowed), so it runs on to the end of the file.`},
		{"unterminated indented heredoc", "pipeline \"p\" {\n  topic = <<-X\n    t\n    Y\n}\n",
			`2:11: error: Unterminated heredoc: The heredoc opened here with <<-X has no closing line holding only X (spaces before it are allowed), so it runs on to the end of the file.`},
		{"unterminated string", "pipeline \"p\" {\n  topic = \"t\n}\n",
			`2:13: error: Invalid multi-line string: Quoted strings may not be split over multiple lines. To produce a multi-line string, either use the \n escape to represent a newline character or use the "heredoc" multi-line template syntax.`},
		{"missing brace", "pipeline \"p\" {\n  topic = \"t\"\n",
			`1:14: error: Unclosed configuration block: There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.`},
		{"not utf-8", "pipeline \"p\" {\n  topic = \"t\xff\"\n}\n",
			`2:13: error: Not UTF-8 text: The file holds a byte (0xff) that is not UTF-8 here: a configuration file is UTF-8 text.`},

		// Wrong types.
		{"topic list", "pipeline \"p\" {\n  topic = [\"t\"]\n}\n",
			`2:11: error: Incorrect attribute value type: topic must be a string: string required, but have tuple.`},
		{"acks bool", "kafka {\n  acks = true\n}\npipeline \"p\" {}\n",
			`2:10: error: Invalid acks: acks must be "0", "1" or "all" ("-1" is "all"), not "true".`},
		{"idempotence string", "kafka {\n  idempotence = \"yes\"\n}\npipeline \"p\" {}\n",
			`2:17: error: Incorrect attribute value type: idempotence must be a bool: a bool is required.`},
		{"brokers number", "kafka {\n  brokers = 5\n}\npipeline \"p\" {}\n",
			`2:13: error: Incorrect attribute value type: brokers must be a list of strings, or a string of comma-separated items.`},
		{"broker without port number", "kafka {\n  brokers = [\"127.0.0.1:9092\", \"127.0.0.1:x\"]\n}\npipeline \"p\" {}\n",
			`2:13: error: Invalid broker address: "127.0.0.1:x" is not HOST:PORT with a port from 1 to 65535.`},
		{"broker url", "kafka {\n  brokers = \"kafka://127.0.0.1:9092\"\n}\npipeline \"p\" {}\n",
			`2:13: error: Invalid broker address: "kafka://127.0.0.1:9092" is not HOST:PORT.`},
		{"pool_size string", "pipeline \"p\" {\n  interceptor \"i\" {\n    module    = \"$W/noop.wasm\"\n    pool_size = \"two\"\n  }\n}\n",
			`4:17: error: Incorrect attribute value type: pool_size must be a number: a number is required.`},
		{"fractional records", "kafka {\n  max_buffered_records = 1.5\n}\npipeline \"p\" {}\n",
			`2:26: error: Invalid value: max_buffered_records must be a whole number from 1 to 2147483647, got 1.5.`},
		{"negative retries", "kafka {\n  retries = -1\n}\npipeline \"p\" {}\n",
			`2:13: error: Invalid value: retries must be a whole number from 0 to 2147483647, got -1.`},
		{"null topic", "pipeline \"p\" {\n  topic = null\n}\n",
			`2:11: error: Invalid value: topic must not be null.`},
		{"threshold string", "pipeline \"p\" {\n  circuit_breaker {\n    threshold = \"x\"\n    cooldown  = \"1s\"\n  }\n}\n",
			`3:17: error: Incorrect attribute value type: threshold must be a number: a number is required.`},

		// Unknown attributes and blocks.
		{"unknown kafka attribute", "kafka {\n  linger_ms = 5\n}\npipeline \"p\" {}\n",
			`2:3: error: Unsupported argument: An argument named "linger_ms" is not expected here.`},
		{"unknown pipeline attribute", "pipeline \"p\" {\n  topik = \"t\"\n}\n",
			`2:3: error: Unsupported argument: An argument named "topik" is not expected here. Did you mean "topic"?`},
		{"unknown root block", "producer {}\npipeline \"p\" {}\n",
			`1:1: error: Unsupported block type: Blocks of type "producer" are not expected here.`},
		{"unknown pipeline block", "pipeline \"p\" {\n  filter \"f\" {}\n}\n",
			`2:3: error: Unsupported block type: Blocks of type "filter" are not expected here.`},
		{"unknown plugin attribute", "pipeline \"p\" {\n  interceptor \"i\" {\n    module = \"$W/noop.wasm\"\n    pool   = 2\n  }\n}\n",
			`4:5: error: Unsupported argument: An argument named "pool" is not expected here.`},
		{"unknown batch attribute", "pipeline \"p\" {\n  batch {\n    size = 3\n  }\n}\n",
			`3:5: error: Unsupported argument: An argument named "size" is not expected here.`},
		{"block as attribute", "kafka = {}\npipeline \"p\" {}\n",
			`1:1: error: Unsupported argument: An argument named "kafka" is not expected here. Did you mean to define a block of type "kafka"?`},
		{"attribute as block", "pipeline \"p\" {\n  topic {}\n}\n",
			`2:3: error: Unsupported block type: Blocks of type "topic" are not expected here. Did you mean to define argument "topic"? If so, use the equals sign to assign it a value.`},
		{"missing label", "pipeline {}\n",
			`1:10: error: Missing name for pipeline: All pipeline blocks must have 1 labels (name).`},

		// Duplicates.
		{"two kafka blocks", "kafka {}\nkafka {}\npipeline \"p\" {}\n",
			`2:1: error: Duplicate kafka block: Only one kafka block is allowed; the first one is at $D/two_kafka_blocks.hcl:1,1-6.`},
		{"two pipelines", "pipeline \"p\" {}\npipeline \"p\" {}\n",
			`2:10: error: Duplicate pipeline name: A pipeline named "p" is already defined at $D/two_pipelines.hcl:1,1-13.`},
		{"two interceptors", "pipeline \"p\" {\n  interceptor \"i\" { module = \"$W/noop.wasm\" }\n  interceptor \"i\" { module = \"$W/noop.wasm\" }\n}\n",
			`3:15: error: Duplicate interceptor name: An interceptor named "i" is already defined in this pipeline at $D/two_interceptors.hcl:2,3-18.`},
		{"two partitioners", "pipeline \"p\" {\n  partitioner { builtin = \"sticky\" }\n  partitioner { builtin = \"murmur2\" }\n}\n",
			`3:3: error: Duplicate partitioner block: A pipeline has at most one partitioner block; the first one is at $D/two_partitioners.hcl:2,3-14.`},
		{"attribute twice", "pipeline \"p\" {\n  topic = \"a\"\n  topic = \"b\"\n}\n",
			`3:3: error: Attribute redefined: The argument "topic" was already set at $D/attribute_twice.hcl:2,3-8. Each argument may be set only once.`},

		// Sizes and durations.
		{"linger word", "kafka {\n  linger = \"soon\"\n}\npipeline \"p\" {}\n",
			`2:12: error: Invalid duration: linger must be a duration such as "250ms", "10s" or "1m30s", got "soon".`},
		{"negative linger", "kafka {\n  linger = \"-5ms\"\n}\npipeline \"p\" {}\n",
			`2:12: error: Invalid duration: linger must not be negative, got "-5ms".`},
		{"zero request timeout", "kafka {\n  request_timeout = \"0s\"\n}\npipeline \"p\" {}\n",
			`2:21: error: Invalid duration: request_timeout must be longer than zero; remove it to keep the default.`},
		{"duration without unit", "pipeline \"p\" {\n  interceptor \"i\" {\n    module  = \"$W/noop.wasm\"\n    timeout = \"1\"\n  }\n}\n",
			`4:15: error: Invalid duration: timeout must be a duration such as "250ms", "10s" or "1m30s", got "1".`},
		{"zero cooldown", "pipeline \"p\" {\n  circuit_breaker {\n    threshold = 3\n    cooldown  = \"0s\"\n  }\n}\n",
			`4:17: error: Invalid cooldown: cooldown must be longer than zero.`},
		{"bad size unit", "kafka {\n  batch_max_bytes = \"1 XB\"\n}\npipeline \"p\" {}\n",
			`2:21: error: Invalid size: batch_max_bytes must be a number of bytes or a size such as "512KiB" or "64MiB": "1 XB" is not a size (a whole number, then B, KB, KiB, MB, MiB, GB or GiB).`},
		{"negative size", "kafka {\n  max_buffered_bytes = -1\n}\npipeline \"p\" {}\n",
			`2:24: error: Invalid size: max_buffered_bytes must be a number of bytes or a size such as "512KiB" or "64MiB": -1 is not a whole, non-negative number of bytes.`},
		{"memory not pages", "pipeline \"p\" {\n  interceptor \"i\" {\n    module       = \"$W/noop.wasm\"\n    memory_limit = \"100KiB\"\n  }\n}\n",
			`4:20: error: Invalid memory_limit: memory_limit must be a multiple of the 64KiB WebAssembly page size, got 102400 bytes.`},
		{"memory too large", "pipeline \"p\" {\n  interceptor \"i\" {\n    module       = \"$W/noop.wasm\"\n    memory_limit = \"10GiB\"\n  }\n}\n",
			`4:20: error: Invalid size: memory_limit must be from 64KiB to 2GiB, got 10GiB.`},
		{"zero max_output", "pipeline \"p\" {\n  interceptor \"i\" {\n    module     = \"$W/noop.wasm\"\n    max_output = 0\n  }\n}\n",
			`4:18: error: Invalid size: max_output must be from 1B to 2147483647B, got 0B.`},
		// franz-go's own limits, which its client checks only when run
		// starts it: validate must report them, at the attribute.
		{"linger above a minute", "kafka {\n  linger = \"2m\"\n}\npipeline \"p\" {}\n",
			`2:12: error: Invalid duration: linger must be from 0s to 1m0s, got 2m0s.`},
		{"request timeout below 100ms", "kafka {\n  request_timeout = \"50ms\"\n}\npipeline \"p\" {}\n",
			`2:21: error: Invalid duration: request_timeout must be from 100ms to 596h31m23.647s, got 50ms.`},
		{"request timeout above int32 ms", "kafka {\n  request_timeout = \"1000h\"\n}\npipeline \"p\" {}\n",
			`2:21: error: Invalid duration: request_timeout must be from 100ms to 596h31m23.647s, got 1000h0m0s.`},
		{"delivery timeout below 1s", "kafka {\n  delivery_timeout = \"500ms\"\n}\npipeline \"p\" {}\n",
			`2:22: error: Invalid duration: delivery_timeout must be at least 1s, got 500ms.`},
		{"metadata age above an hour", "kafka {\n  metadata_max_age = \"2h\"\n}\npipeline \"p\" {}\n",
			`2:22: error: Invalid duration: metadata_max_age must be from 10ms to 1h0m0s, got 2h0m0s.`},
		{"batch below 512B", "kafka {\n  batch_max_bytes = 100\n}\npipeline \"p\" {}\n",
			`2:21: error: Invalid size: batch_max_bytes must be from 512B to 1GiB, got 100B.`},
		{"request above 1GiB", "kafka {\n  max_request_size = \"2GiB\"\n}\npipeline \"p\" {}\n",
			`2:22: error: Invalid size: max_request_size must be from 1KiB to 1GiB, got 2GiB.`},
		{"batch above default buffer", "kafka {\n  batch_max_bytes = \"64MiB\"\n}\npipeline \"p\" {}\n",
			`2:21: error: max_buffered_bytes below batch_max_bytes: batch_max_bytes (64MiB), the largest record, must fit in the client's buffer, max_buffered_bytes (its default, 32MiB); set max_buffered_bytes to at least batch_max_bytes, or to 0 for no byte limit.`},
		{"client id too long", "kafka {\n  client_id = \"" + strings.Repeat("c", 257) + "\"\n}\npipeline \"p\" {}\n",
			`2:15: error: Invalid value: client_id must be at most 256 bytes long, got 257.`},
		{"empty transactional id", "kafka {\n  transactional_id = \"\"\n}\npipeline \"p\" {}\n",
			`2:22: error: Invalid transactional_id: transactional_id must not be empty (brokers refuse an empty one); remove the attribute for a producer that is not transactional.`},
		{"zero batch records", "pipeline \"p\" {\n  batch {\n    max_records = 0\n  }\n}\n",
			`3:19: error: Invalid value: max_records must be a whole number from 1 to 65536, got 0.`},

		// env().
		{"env unset", "kafka {\n  client_id = env(\"KPIPE_DIAG_UNSET\")\n}\npipeline \"p\" {}\n",
			`2:20: error: Invalid function argument: Invalid value for "name" parameter: environment variable KPIPE_DIAG_UNSET is not set; set it, or give a default: env("KPIPE_DIAG_UNSET", "DEFAULT").`},
		{"env no argument", "kafka {\n  client_id = env()\n}\npipeline \"p\" {}\n",
			`2:19: error: Not enough function arguments: Function "env" expects at least 1 argument(s). Missing value for "name".`},
		{"env three arguments", "kafka {\n  client_id = env(\"KPIPE_DIAG_SET\", \"a\", \"b\")\n}\npipeline \"p\" {}\n",
			`2:43: error: Invalid function argument: Invalid value for "default" parameter: env takes a name and at most one default value.`},
		{"env list", "kafka {\n  client_id = env([\"KPIPE_DIAG_SET\"])\n}\npipeline \"p\" {}\n",
			`2:19: error: Invalid function argument: Invalid value for "name" parameter: string required, but have tuple.`},
		{"env attribute unset", "kafka {\n  client_id = env.KPIPE_DIAG_UNSET\n}\npipeline \"p\" {}\n",
			`2:18: error: Environment variable not set: environment variable KPIPE_DIAG_UNSET is not set; set it, or give a default: env("KPIPE_DIAG_UNSET", "DEFAULT").`},
		{"empty brokers list", "kafka {\n  brokers = []\n}\npipeline \"p\" {}\n",
			`2:13: error: Empty brokers: The brokers list names no broker. For kpipe's embedded broker, remove the brokers attribute, or write brokers = env("KAFKA_BROKERS", "") to choose when kpipe starts: the embedded broker while KAFKA_BROKERS is unset or empty.`},
		{"unknown function", "kafka {\n  client_id = getenv(\"KPIPE_DIAG_SET\")\n}\npipeline \"p\" {}\n",
			`2:15: error: Call to unknown function: There is no function named "getenv".`},

		// Conflicting settings.
		{"idempotence without acks all", "kafka {\n  acks        = \"1\"\n  idempotence = true\n}\npipeline \"p\" {}\n",
			`3:3: error: Idempotence needs acks = "all": Idempotent writes require acks = "all", but acks is "1" (at $D/idempotence_without_acks_all.hcl:2,17-20). Set idempotence = false, or acks = "all".`},
		{"transaction without idempotence", "kafka {\n  transactional_id = \"tx\"\n  idempotence      = false\n}\npipeline \"p\" {}\n",
			`3:3: error: Transactions need idempotence: A transactional producer (transactional_id at $D/transaction_without_idempotence.hcl:2,22-26) must be idempotent; remove idempotence = false.`},
		{"transaction with acks 0", "kafka {\n  transactional_id = \"tx\"\n  acks             = \"0\"\n}\npipeline \"p\" {}\n",
			`3:3: error: Transactions need acks = "all": A transactional producer (transactional_id at $D/transaction_with_acks_0.hcl:2,22-26) must use acks = "all".`},
		{"batch above request", "kafka {\n  batch_max_bytes  = \"2MiB\"\n  max_request_size = \"1MiB\"\n}\npipeline \"p\" {}\n",
			`2:22: error: Batch larger than a request: batch_max_bytes (2MiB) must not be larger than max_request_size (1MiB, max_request_size at $D/batch_above_request.hcl:3,22-28): a batch is sent in one produce request.`},
		{"batch above default request", "kafka {\n  batch_max_bytes = \"200MiB\"\n}\npipeline \"p\" {}\n",
			`2:21: error: Batch larger than a request: batch_max_bytes (200MiB) must not be larger than max_request_size (100MiB, its default): a batch is sent in one produce request.`},
		{"request below default batch", "kafka {\n  max_request_size = \"512KiB\"\n}\npipeline \"p\" {}\n",
			`2:22: error: Batch larger than a request: batch_max_bytes (1000012B) must not be larger than max_request_size (512KiB, max_request_size at $D/request_below_default_batch.hcl:2,22-30): a batch is sent in one produce request.`},
		{"module and builtin", "pipeline \"p\" {\n  partitioner {\n    module  = \"$W/noop.wasm\"\n    builtin = \"sticky\"\n  }\n}\n",
			`4:5: error: Conflicting plugin source: A partitioner block names either a module or a builtin, not both (module is at $D/module_and_builtin.hcl:3,5-` + fmt.Sprint(17+len(wat)+len("/noop.wasm")) + `).`},
		{"builtin with limit", "pipeline \"p\" {\n  partitioner {\n    builtin      = \"sticky\"\n    memory_limit = \"1MiB\"\n  }\n}\n",
			`4:5: error: Not allowed with a builtin: memory_limit applies to WASM modules only; builtin "sticky" runs natively.`},
		{"builtin with config", "pipeline \"p\" {\n  value_serializer {\n    builtin = \"json\"\n    config  = { pretty = true }\n  }\n}\n",
			`4:5: error: Not allowed with a builtin: builtin "json" takes no config; remove the config attribute.`},
		{"builtin interceptor", "pipeline \"p\" {\n  interceptor \"i\" { builtin = \"json\" }\n}\n",
			`2:31: error: Invalid builtin: there are no built-in interceptors; use module = "path/to/plugin.wasm".`},
		{"unknown builtin", "pipeline \"p\" {\n  key_serializer { builtin = \"avro\" }\n}\n",
			`2:30: error: Invalid builtin: unknown serializer "avro" (built-in serializers: bytes, json, string).`},
		{"unknown failure policy", "pipeline \"p\" {\n  interceptor \"i\" {\n    module     = \"$W/noop.wasm\"\n    on_failure = \"ignore\"\n  }\n}\n",
			`4:18: error: Invalid on_failure: interceptor: on_failure must be "skip", "fail" or "drop", not "ignore".`},
		{"drop for a partitioner", "pipeline \"p\" {\n  partitioner {\n    builtin    = \"sticky\"\n    on_failure = \"drop\"\n  }\n}\n",
			`4:18: error: Invalid on_failure: partitioner: on_failure must be "default" or "fail", not "drop".`},
		{"misspelt failure policy", "pipeline \"p\" {\n  interceptor \"i\" {\n    module     = \"$W/noop.wasm\"\n    on_failure = \"fial\"\n  }\n}\n",
			`4:18: error: Invalid on_failure: interceptor: on_failure must be "skip", "fail" or "drop", not "fial". Did you mean "fail"?`},
		{"breaker in a serializer", "pipeline \"p\" {\n  value_serializer {\n    builtin = \"json\"\n    circuit_breaker {\n      threshold = 3\n      cooldown  = \"1s\"\n    }\n  }\n}\n",
			`4:5: error: Not allowed in a serializer: Serializers have no circuit breaker: a record a serializer cannot serialize always fails.`},
		{"two breakers in a plugin", "pipeline \"p\" {\n  interceptor \"i\" {\n    module = \"$W/noop.wasm\"\n    circuit_breaker {\n      threshold = 3\n      cooldown  = \"1s\"\n    }\n    circuit_breaker {\n      threshold = 3\n      cooldown  = \"1s\"\n    }\n  }\n}\n",
			`8:5: error: Duplicate circuit_breaker block: A plugin block has at most one circuit_breaker block; the first one is at $D/two_breakers_in_a_plugin.hcl:4,5-20.`},
		{"no plugin source", "pipeline \"p\" {\n  partitioner {}\n}\n",
			`2:3: error: Missing plugin source: A partitioner block needs either module = "path/to/plugin.wasm" or builtin = "NAME".`},
		{"too many interceptors", "pipeline \"p\" {\n" + many.String() + "}\n",
			`66:3: error: Too many interceptors: A pipeline has at most 64 interceptors; this is interceptor 65.`},
		{"no pipeline", "kafka {}\n",
			`1:1: error: No pipeline: The configuration must define at least one pipeline "NAME" block.`},
		{"missing required", "pipeline \"p\" {\n  circuit_breaker {\n    threshold = 3\n  }\n}\n",
			`2:19: error: Missing required argument: The argument "cooldown" is required, but no definition was found.`},

		// Missing files, files that are not modules, modules that do not load.
		{"module missing", "pipeline \"p\" {\n  interceptor \"i\" { module = \"nope.wasm\" }\n}\n",
			`2:30: error: Module not found: $D/nope.wasm does not exist (relative module paths are resolved against the directory of the configuration file).`},
		{"module empty path", "pipeline \"p\" {\n  interceptor \"i\" { module = \"\" }\n}\n",
			`2:30: error: Invalid module: module must not be empty.`},
		{"module directory", "pipeline \"p\" {\n  interceptor \"i\" { module = \"adir.wasm\" }\n}\n",
			`2:30: error: Module not found: $D/adir.wasm is a directory, not a WASM module.`},
		{"module not wasm", "pipeline \"p\" {\n  interceptor \"i\" { module = \"notwasm.wasm\" }\n}\n",
			`2:30: error: Cannot load module: wasmhost: load plugin "i" from $D/notwasm.wasm: not a WebAssembly module (the binary does not start with \0asm)`},
		{"module empty file", "pipeline \"p\" {\n  interceptor \"i\" { module = \"empty.wasm\" }\n}\n",
			`2:30: error: Cannot load module: wasmhost: load plugin "i" from $D/empty.wasm: not a WebAssembly module (the binary does not start with \0asm)`},
		{"module wrong kind", "pipeline \"p\" {\n  partitioner { module = \"$W/trap.wasm\" }\n}\n",
			`2:26: error: Cannot load module: wasmhost: load plugin "trap" from $W/trap.wasm: wrong kind: loaded as partitioner, but the module declares interceptor`},
		{"module init fails", "pipeline \"p\" {\n  interceptor \"i\" { module = \"$T/init_error.wasm\" }\n}\n",
			`2:30: error: Cannot load module: wasmhost: load plugin "i" from $T/init_error.wasm: kpipe_init failed: no config`},
		{"module unknown import", "pipeline \"p\" {\n  interceptor \"i\" { module = \"$T/unknown_import.wasm\" }\n}\n",
			`2:30: error: Cannot load module: wasmhost: load plugin "i" from $T/unknown_import.wasm: unknown import kpipe.open_socket: the kpipe module has config_get, log_enabled, log, set_error, enable_features`},
		{"module is a command", "pipeline \"p\" {\n  interceptor \"i\" { module = \"$T/command.wasm\" }\n}\n",
			`2:30: error: Cannot load module: wasmhost: load plugin "i" from $T/command.wasm: exports _start but not _initialize: it is a WASI command, which runs main and exits, not a reactor, which kpipe needs: a module whose functions the host calls (build Go guests with -buildmode=c-shared, C with -mexec-model=reactor, Rust as a cdylib)`},
		{"memory limit too small", "pipeline \"p\" {\n  interceptor \"i\" {\n    module       = \"$W/noop.wasm\"\n    memory_limit = \"64KiB\"\n  }\n}\n",
			`4:20: error: Limit too small for this module: the module loads with the default memory_limit, but not with this one: wasmhost: load plugin "i" from $W/noop.wasm: kpipe_buffer(65536) returned 0: the guest cannot provide an input buffer of that size`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".hcl")
			if err := os.WriteFile(path, []byte(expand(tt.src)), 0o644); err != nil {
				t.Fatal(err)
			}
			want := path + ":" + expand(tt.want) + "\nkpipe: " + path + ": 1 errors\n"
			for _, cmd := range [][]string{
				{"validate", "--wasm-cache", cache, "--config", path},
				{"run", "--wasm-cache", cache, "--config", path},
			} {
				var stdout, stderr bytes.Buffer
				code := Main(context.Background(), cmd, strings.NewReader(`{"value":"x"}`), &stdout, &stderr)
				if code != ExitFailed || stderr.String() != want || stdout.Len() != 0 {
					t.Errorf("%s: exit %d, stdout %q\nstderr:\n%s\nwant exit 1 and stderr:\n%s", cmd[0], code, stdout.String(), stderr.String(), want)
				}
			}
		})
	}
}
