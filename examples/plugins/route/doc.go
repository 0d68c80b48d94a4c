// Command route is a kpipe partitioner plugin that sends records to fixed
// partitions by a field of their JSON value or by a prefix of their key.
//
// Configuration (the plugin's config block, as JSON), with either rule or
// both:
//
//	{
//	  "field":  "region",                     // dotted path into the JSON value
//	  "routes": {"eu": 0, "us": 1},           // field value -> partition
//	  "key_prefix_routes": {"eu-": 0, "us-": 1} // key prefix -> partition, longest prefix wins
//	}
//
// The field rule is tried first: a string field matches a route by its text,
// a number by its JSON text (so {"shard": 3} matches route "3"); when the path
// crosses arrays, the first match counts. The partitioner sees serialized
// values: a value in the Confluent wire format (a zero magic byte and a
// schema id, as the schemaprefix serializer writes it) is read after that
// 5-byte header. Records that
// match no route — no such field, no matching prefix, a value that is not
// JSON, a null key — go to the default partitioner. A route to a partition
// the topic does not have is an error: the host logs it and uses the default
// partitioner for that record.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o route.wasm .
package main
