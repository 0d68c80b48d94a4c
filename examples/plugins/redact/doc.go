// Command redact is a kpipe interceptor plugin that masks fields of JSON
// record values, and can filter out records that lack a field.
//
// Configuration (the plugin's config block, as JSON):
//
//	{
//	  "fields":          ["ssn", "card.number", "items.card"],  // dotted paths to mask
//	  "replacement":     "***",                                  // optional, default "***"
//	  "drop_if_missing": "user_id"                               // optional: drop records without this path
//	}
//
// A path's steps are object member names; a step that meets an array applies
// to every element. A masked field's value, whatever its type, becomes the
// replacement string; the rest of the document is kept byte for byte (member
// order, numbers, white space). A value that is not a valid JSON object or
// array, or a null value, passes unchanged and is never dropped. A record
// whose value has none of the fields passes unchanged, without being
// re-encoded.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o redact.wasm .
package main
