package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// Load a plugin as an interceptor and run records through it. A fault is
// contained: the call fails, the next one runs on a fresh instance.
func Example() {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.WithoutCompilationCache())
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close(ctx)

	p, err := h.LoadFile(ctx, "faulty", "testdata/faulty.wasm", plugins.KindInterceptor,
		wasmhost.WithPoolSize(1))
	if err != nil {
		log.Fatal(err)
	}

	rec := &plugins.Record{Topic: "orders", Value: []byte("hello")}
	rec.SetPartition(1) // faulty.wat traps on partition 1
	_, err = p.OnSend(ctx, rec)
	var f *wasmhost.Fault
	if errors.As(err, &f) {
		fmt.Println("fault:", f.Plugin, f.Hook, f.Reason)
	}

	rec.SetPartition(10) // and drops records on partition 10
	verdict, err := p.OnSend(ctx, rec)
	fmt.Println("dropped:", verdict == plugins.Drop, err)
	fmt.Println("instances replaced:", p.Stats().InstancesReplaced)
	// Output:
	// fault: faulty kpipe_on_send trap
	// dropped: true <nil>
	// instances replaced: 1
}
