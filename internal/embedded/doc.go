// Package embedded runs an in-process Kafka-protocol broker (franz-go's kfake)
// for kpipe's command line: `kpipe broker`, and `kpipe run` when no broker is
// configured anywhere.
//
// kfake is a fake: it speaks the Kafka protocol well enough for producers,
// consumers, transactions and consumer groups, but it does not replicate and
// it keeps data in memory. It is meant for trying kpipe out and for tests,
// never for data that matters.
package embedded
