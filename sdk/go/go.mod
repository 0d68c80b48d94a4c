module github.com/kpipe/kpipe/sdk/go

go 1.24
