// Command schemaprefix is a kpipe serializer plugin that writes JSON in the
// Confluent Schema Registry wire format: a zero magic byte, the schema id as
// a 4-byte big-endian integer, then the JSON document, validated and
// compacted.
//
// Configuration (the plugin's config block, as JSON):
//
//	{
//	  "schema_id":     42,  // required: the id of the value schema
//	  "key_schema_id": 7    // optional: the id of the key schema
//	}
//
// Loaded as a value serializer it frames values with schema_id. Loaded as a
// key serializer it frames keys with key_schema_id, and passes keys through
// unchanged when that is not set. Data that is not one valid JSON document
// fails the record, with the JSON error as the message. The schema itself is
// not fetched or checked: the plugin runs without network access.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o schemaprefix.wasm .
package main
