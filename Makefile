# kpipe developer tasks. `make` (or `make help`) lists them.

GO       ?= go
WAT2WASM ?= wat2wasm

# Where `make plugins` puts the Go example plugins.
PLUGIN_DIR := build/plugins
# The Go example plugins: every directory of examples/plugins with a main.go.
GO_PLUGINS := $(patsubst examples/plugins/%/main.go,%,$(wildcard examples/plugins/*/main.go))
# Hand-written WebAssembly text modules; their .wasm is committed next to them,
# so only `make wasm` and `make check-wasm` need wat2wasm (wabt): every other
# target, and `go test ./...`, use the committed .wasm.
WAT_DIRS   := examples/plugins/wat wasmhost/testdata
WAT_FILES  := $(foreach d,$(WAT_DIRS),$(wildcard $(d)/*.wat))

# Building a guest: a WASI reactor, as the plugin ABI requires.
GUEST_ENV := GOOS=wasip1 GOARCH=wasm

# The SDK examples (examples/plugins/<lang>/: a header stamp and a key-hash
# partitioner per language) are built to build/sdk-examples/<lang>/ with the
# commands of sdk/ABI.md's "Languages" section. .ci/run installs the tools.
SDK_OUT := build/sdk-examples
CLANG   ?= clang
ZIG     ?= python3 -m ziglang
CARGO   ?= cargo
NPM     ?= npm
NODE    ?= node
# The AssemblyScript compiler, installed from npm under build/npm (never
# committed) by the rule for $(ASC).
ASC_VERSION ?= 0.28.20
ASC_DIR     := build/npm
ASC         := $(ASC_DIR)/node_modules/.bin/asc
ASC_FLAGS   := -O3 --noAssert --runtime minimal --exportStart _initialize

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@echo 'Targets:'
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 16

.PHONY: plugins
plugins: ## Build the Go example plugins to build/plugins/<name>.wasm (needs only Go).
	@mkdir -p $(PLUGIN_DIR)
	@for p in $(GO_PLUGINS); do \
		echo "go build $$p -> $(PLUGIN_DIR)/$$p.wasm"; \
		(cd examples/plugins && $(GUEST_ENV) $(GO) build -buildmode=c-shared -o ../../$(PLUGIN_DIR)/$$p.wasm ./$$p) || exit 1; \
	done

.PHONY: wasm
wasm: ## Recompile the committed .wasm of every .wat in examples/plugins/wat and wasmhost/testdata (needs wabt).
	@for f in $(WAT_FILES); do \
		echo "$(WAT2WASM) $$f"; \
		$(WAT2WASM) $$f -o $${f%.wat}.wasm || exit 1; \
	done

.PHONY: check-wasm
check-wasm: ## Fail if a .wasm is missing, not committed, or differs from its .wat (needs wabt).
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && status=0 && \
	for f in $(WAT_FILES); do \
		w=$${f%.wat}.wasm; \
		$(WAT2WASM) $$f -o $$tmp/out.wasm || { status=1; continue; }; \
		if [ ! -f $$w ]; then echo "missing: $$w (run make wasm)"; status=1; \
		elif ! cmp -s $$tmp/out.wasm $$w; then echo "stale: $$w differs from $$f (run make wasm)"; status=1; \
		elif git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git ls-files --error-unmatch $$w >/dev/null 2>&1; then \
			echo "not committed: $$w (git add it)"; status=1; fi; \
	done; \
	if [ $$status -eq 0 ]; then echo "check-wasm: $(words $(WAT_FILES)) modules up to date"; fi; \
	exit $$status

.PHONY: sdk-examples
sdk-examples: sdk-examples-c sdk-examples-zig sdk-examples-rust sdk-examples-assemblyscript ## Build the C, Rust, Zig and AssemblyScript example plugins to build/sdk-examples/<lang>/.

.PHONY: sdk-examples-c
sdk-examples-c: ## Build the C examples freestanding (c/), with wasi-libc (c-wasi/) and without edits (c-whole/), and test the C SDK natively.
	@mkdir -p $(SDK_OUT)/c $(SDK_OUT)/c-wasi
	@for p in stamp keyhash mask noop; do \
		echo "clang $$p.c -> $(SDK_OUT)/c/$$p.wasm, $(SDK_OUT)/c-wasi/$$p.wasm"; \
		$(CLANG) --target=wasm32 -nostdlib -O2 -Wall -Wextra -Werror -Isdk/c -Wl,--no-entry -Wl,--strip-all \
			-o $(SDK_OUT)/c/$$p.wasm examples/plugins/c/$$p.c || exit 1; \
		$(CLANG) --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror -Isdk/c -Wl,--strip-all \
			-o $(SDK_OUT)/c-wasi/$$p.wasm examples/plugins/c/$$p.c || exit 1; \
	done
	@mkdir -p $(SDK_OUT)/c-whole
	$(CLANG) --target=wasm32 -nostdlib -O2 -Wall -Wextra -Werror -Isdk/c -Wl,--no-entry -Wl,--strip-all \
		-DSTAMP_WHOLE_RECORD -o $(SDK_OUT)/c-whole/stamp.wasm examples/plugins/c/stamp.c
	$(CLANG) -std=c11 -O1 -Wall -Wextra -Werror -Isdk/c -o $(SDK_OUT)/c/vectors_test sdk/c/test/vectors_test.c
	$(SDK_OUT)/c/vectors_test sdk/testdata
	$(CLANG) -std=c11 -O1 -Wall -Wextra -Werror -Isdk/c -o $(SDK_OUT)/c/consume_test sdk/c/test/consume_test.c
	$(SDK_OUT)/c/consume_test sdk/testdata

.PHONY: sdk-examples-zig
sdk-examples-zig: ## Build the Zig examples (on the C SDK, through @cImport; needs Zig 0.15).
	@v=$$($(ZIG) version 2>/dev/null) || { echo "sdk-examples-zig: no Zig at '$(ZIG)': pip install ziglang==0.15.2, or set ZIG" >&2; exit 1; }; \
	case "$$v" in 0.15.*) ;; *) echo "sdk-examples-zig: Zig $$v at '$(ZIG)': the examples need 0.15 (they use @cImport, which Zig 0.17 no longer has): pip install ziglang==0.15.2, or set ZIG" >&2; exit 1;; esac
	@mkdir -p $(SDK_OUT)/zig
	@for p in stamp keyhash; do \
		echo "zig build-exe $$p.zig -> $(SDK_OUT)/zig/$$p.wasm"; \
		$(ZIG) build-exe examples/plugins/zig/$$p.zig sdk/c/kpipe.c -I sdk/c \
			-target wasm32-freestanding -mcpu generic+bulk_memory -fno-entry -rdynamic -O ReleaseSmall -flto \
			--cache-dir $(SDK_OUT)/.zig-cache -femit-bin=$(SDK_OUT)/zig/$$p.wasm || exit 1; \
	done

.PHONY: sdk-examples-rust
sdk-examples-rust: ## Test the Rust SDK natively and build the Rust examples for wasm32-wasip1.
	cd sdk/rust && CARGO_TARGET_DIR=$(CURDIR)/$(SDK_OUT)/rust/target $(CARGO) test --quiet
	cd examples/plugins/rust && CARGO_TARGET_DIR=$(CURDIR)/$(SDK_OUT)/rust/target \
		$(CARGO) build --quiet --locked --release --target wasm32-wasip1
	cp $(SDK_OUT)/rust/target/wasm32-wasip1/release/stamp.wasm $(SDK_OUT)/rust/target/wasm32-wasip1/release/keyhash.wasm \
		$(SDK_OUT)/rust/target/wasm32-wasip1/release/mask.wasm $(SDK_OUT)/rust/

$(ASC):
	@mkdir -p $(ASC_DIR)
	$(NPM) install --prefix $(ASC_DIR) --no-save --no-audit --no-fund assemblyscript@$(ASC_VERSION)

# KafkaJS, for the gateway's end-to-end test (cmd/kpipe/gateway_test.go), in
# a directory of its own: an npm install with --no-save removes the packages
# of its directory that it did not install.
KAFKAJS_VERSION ?= 2.2.4
KAFKAJS_DIR     := build/npm-kafkajs

.PHONY: gateway-clients
gateway-clients: ## Install KafkaJS under build/npm-kafkajs, for the gateway's end-to-end test (needs npm).
	@mkdir -p $(KAFKAJS_DIR)
	$(NPM) install --prefix $(KAFKAJS_DIR) --no-save --no-audit --no-fund kafkajs@$(KAFKAJS_VERSION)

.PHONY: sdk-examples-assemblyscript
sdk-examples-assemblyscript: $(ASC) ## Build the AssemblyScript examples and test the SDK against the vectors with node.
	@mkdir -p $(SDK_OUT)/assemblyscript
	ln -sfn $(CURDIR)/sdk/assemblyscript $(ASC_DIR)/node_modules/kpipe-sdk
	@for p in stamp keyhash mask; do \
		echo "asc $$p.ts -> $(SDK_OUT)/assemblyscript/$$p.wasm"; \
		$(ASC) examples/plugins/assemblyscript/$$p.ts --path $(ASC_DIR)/node_modules $(ASC_FLAGS) \
			--use abort=~lib/kpipe-sdk/assembly/index/abort -o $(SDK_OUT)/assemblyscript/$$p.wasm || exit 1; \
	done
	cd sdk/assemblyscript && $(CURDIR)/$(ASC) tests/harness.ts $(ASC_FLAGS) --use abort=assembly/index/abort \
		-o $(CURDIR)/$(SDK_OUT)/assemblyscript/harness.wasm
	$(NODE) sdk/assemblyscript/tests/vectors.mjs $(SDK_OUT)/assemblyscript/harness.wasm sdk/testdata
	cd sdk/assemblyscript && $(CURDIR)/$(ASC) tests/consume_harness.ts $(ASC_FLAGS) --use abort=assembly/index/abort \
		-o $(CURDIR)/$(SDK_OUT)/assemblyscript/consume_harness.wasm
	$(NODE) sdk/assemblyscript/tests/consume.mjs $(SDK_OUT)/assemblyscript/consume_harness.wasm sdk/testdata

# The consume-side examples that sdk-conformance checks beside the SDK
# examples (not counted among them): the mask examples of the C, Rust and
# AssemblyScript SDKs, built by sdk-examples, and these committed WAT modules.
CONSUME_WAT := examples/plugins/wat/mask.wasm examples/plugins/wat/filter.wasm

# Modules that break the ABI in one way each: sdk-conformance must see
# plugin conformance refuse every one.
NONCONFORMING := $(wildcard wasmhost/testdata/nonconforming_*.wasm) wasmhost/testdata/trap.wasm \
	wasmhost/testdata/mistyped_export.wasm wasmhost/testdata/missing_export.wasm wasmhost/testdata/command.wasm

.PHONY: sdk-conformance
sdk-conformance: ## Run kpipe plugin conformance on every SDK example (must pass) and on broken modules (must fail).
	$(GO) build -o build/kpipe ./cmd/kpipe
	@status=0; n=0; \
	for m in $(SDK_OUT)/*/stamp.wasm $(SDK_OUT)/*/keyhash.wasm $(SDK_OUT)/*/mask.wasm $(SDK_OUT)/*/noop.wasm $(CONSUME_WAT); do \
		case $$m in */stamp.wasm|*/keyhash.wasm) n=$$((n+1));; esac; \
		if build/kpipe plugin conformance $$m >$(SDK_OUT)/conformance.out 2>&1; then \
			echo "conforms:       $$m"; \
		else \
			echo "DOES NOT CONFORM: $$m"; cat $(SDK_OUT)/conformance.out; status=1; \
		fi; \
	done; \
	if [ $$n -lt 10 ]; then echo "only $$n SDK examples under $(SDK_OUT) (run make sdk-examples)"; status=1; fi; \
	for m in $(NONCONFORMING); do \
		build/kpipe plugin conformance $$m >$(SDK_OUT)/conformance.out 2>&1; rc=$$?; \
		if [ $$rc -eq 1 ]; then echo "refused:        $$m ($$(grep -m1 '^FAIL' $(SDK_OUT)/conformance.out | cut -c1-80))"; \
		else echo "NOT REFUSED (exit $$rc): $$m"; cat $(SDK_OUT)/conformance.out; status=1; fi; \
	done; \
	exit $$status

.PHONY: vectors
vectors: ## Rewrite the ABI test vectors under sdk/testdata from the host's encoder.
	$(GO) test ./wasmhost/internal/abi -run '^TestVectors$$' -update

.PHONY: test
test: ## Run the tests of the main module, the Go SDK and the example plugins.
	$(GO) test ./...
	cd sdk/go && $(GO) test ./...
	cd examples/plugins && $(GO) test ./...

.PHONY: vet
vet: ## Run go vet on every module, and on the guests for wasip1.
	$(GO) vet ./...
	cd sdk/go && $(GO) vet ./... && $(GUEST_ENV) $(GO) vet ./...
	cd examples/plugins && $(GO) vet ./... && $(GUEST_ENV) $(GO) vet ./...

.PHONY: bench
bench: ## Run the benchmarks (no tests) with allocation counts.
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd sdk/go && $(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-produce
bench-produce: ## Run BenchmarkProduce in rounds and report the ratios of issue #3's targets.
	python3 scripts/produce_ratios.py 6 2000000

.PHONY: bench-sdk
bench-sdk: ## Run BenchmarkSDKStampRatios: each SDK's header stamp against the WAT no-op, interleaved (run make sdk-examples first).
	$(GO) test -run '^$$' -bench '^BenchmarkSDKStampRatios$$' -benchtime $(or $(ROUNDS),50)x ./wasmhost/

.PHONY: bench-cli
bench-cli: ## Compare kpipe run with kcat, kafka-python and franz-go (N records, default 1000000; BROKERS=host:port for a real broker).
	python3 scripts/bench_cli.py --records $(or $(N),1000000) $(if $(BROKERS),--brokers $(BROKERS))

.PHONY: quickstart
quickstart: plugins ## Build the plugins and run the quickstart pipeline.
	$(GO) run ./cmd/kpipe run --config examples/quickstart.hcl --input examples/quickstart.jsonl

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf build
