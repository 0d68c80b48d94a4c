// Package wasmhost runs kpipe plugins compiled to WebAssembly, following the
// plugin ABI v1 in sdk/ABI.md, on the wazero runtime.
//
// A Host compiles modules (keeping the machine code in a compilation cache
// on disk) and owns every Plugin it loads. A Plugin validates its module at
// load time, runs a bounded pool of sandboxed instances of it, and
// implements plugins.Interceptor, plugins.Serializer and plugins.Partitioner,
// and, for modules of ABI version 2, the consume-side
// plugins.ConsumeInterceptor and plugins.Deserializer (consume.go):
//
//	h, err := wasmhost.New(ctx, wasmhost.WithLogger(logger))
//	...
//	defer h.Close(ctx)
//	p, err := h.LoadFile(ctx, "redact", "redact.wasm", plugins.KindInterceptor,
//		wasmhost.WithConfig([]byte(`{"fields":["ssn"]}`)))
//	...
//	verdict, err := p.OnSend(ctx, &rec)
//
// A Plugin also implements the optional batch interfaces of package
// plugins (BatchInterceptor, BatchPartitioner, AckBatcher): a batch of
// records runs on one instance taken from the pool once, in one call of the
// module's batch export (sdk/ABI.md section 5.5) if it has one, else in
// one per-record call each; OnAckBatch takes a batch of acknowledgements
// (the pipeline decides when to deliver them: the Plugin queues nothing). A
// batch call that fails as a whole (a fault, or KPIPE_ERROR of the whole
// call) is run again one record at a time on a healthy instance, so that
// exactly the records whose own call fails get an error; the re-run stops
// calling after 8 faults in one batch.
//
// # Faults
//
// A broken plugin never stops the stream. A call that traps, exits, runs
// past its time limit, exceeds its memory limit or returns a result the ABI
// does not allow fails with a *Fault; the instance that ran it is closed and
// a fresh one is created for the next call. A hook that reports an error
// through the ABI fails with a *GuestError and its instance stays in use.
// Both name the plugin and the hook; use errors.As to tell them apart.
//
// Loading is bounded too: compiling a module and each phase of creating an
// instance (its start function, _initialize, kpipe_init, the first
// kpipe_buffer, kpipe_kinds) must finish within the load timeout
// (WithLoadTimeout), and cancelling the context of Load stops any phase.
// Before compiling, a module is checked against limits on its structure
// (sdk/ABI.md section 3: nesting depth, locals, parameters, counts of
// entries and more) that keep its compilation short, since compilation
// cannot be stopped once it started.
// A Load error names the plugin, the phase and, from LoadFile, the file,
// and lists every problem of an invalid module at once.
//
// # Sandbox
//
// Instances get WASI without a file system, environment variables,
// arguments or network. Their stdout and stderr are logged line by line,
// within a per-plugin rate limit (WithLogRateLimit) that also covers their
// log calls. Besides its linear memory (WithMemoryLimitPages), a call may
// nest frames up to a stack budget of about 8 MiB (RATIONALE.md), so that
// endless recursion is a cheap fault.
// Clocks are real and random numbers come from crypto/rand. The host module
// "kpipe" provides config_get, log_enabled, log, set_error and
// enable_features; every pointer a guest passes to it is checked.
// enable_features grants, during _initialize and kpipe_init only, the
// features of ABI section 8.1 (key-only partitioner input, acknowledgements
// without their record); the first instance fixes a plugin's set
// (Plugin.Features).
//
// # Costs
//
// A hook call is one call into the guest. A hook that leaves the record
// alone does not allocate on the host side (about 0.1 µs for a module that
// does nothing); in batches of 16 or more, through the batch exports, about
// 20 ns per record. The call timeout (on by default, see WithCallTimeout) is
// enforced by checks the host inserts into the module at function entries
// and loop headers and by one watchdog goroutine per plugin, which costs
// nothing per call on the host side; modules the host cannot instrument
// fall back to wazero's termination checks, which add about 2 µs per call
// and slow loops considerably. RATIONALE.md explains the design and its
// figures.
package wasmhost
