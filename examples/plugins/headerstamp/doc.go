// Command headerstamp is a kpipe interceptor plugin that adds headers to every
// record and keeps count of what happened to them.
//
// Configuration (the plugin's config block, as JSON):
//
//	{
//	  "headers":          {"source": "kpipe"},  // set on every record, replacing headers of the same name
//	  "sequence_header":  "kpipe-seq",          // optional: a per-instance sequence number, in decimal
//	  "timestamp_header": "kpipe-stamped-at",   // optional: when the record was intercepted, in Unix milliseconds
//	  "log_every":        10000                 // optional: log the ack counters every N acks (0: never)
//	}
//
// At least one header must be configured. Sequence numbers and counters
// belong to one plugin instance: with a pool of several instances, each
// counts its own share of the records.
//
// OnAck counts delivered and failed records, logs each failure at debug level
// and a summary every log_every acks at info level.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o headerstamp.wasm .
package main
