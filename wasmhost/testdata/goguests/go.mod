module github.com/kpipe/kpipe/wasmhost/testdata/goguests

go 1.24

require github.com/kpipe/kpipe/sdk/go v0.0.0

replace github.com/kpipe/kpipe/sdk/go => ../../../sdk/go
