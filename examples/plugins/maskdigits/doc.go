// Command maskdigits is a consume interceptor (ABI v2, sdk/ABI.md section
// 10): it masks the digits of every consumed record's value with '*' before
// the application reads it, keeping the last keep_last digits of each run of
// digits (a card number 4111111111111111 with keep_last 4 reads
// ************1111), and filters out records that carry the header named by
// drop_header. Configuration (a JSON object, every field optional):
//
//	{"keep_last": 4, "drop_header": "internal"}
//
// Build it with `make plugins` (build/plugins/maskdigits.wasm) and use it in
// a consumer block of kpipe's configuration:
//
//	consumer "payments" {
//	  topics = ["payments"]
//	  interceptor "mask" {
//	    module     = "build/plugins/maskdigits.wasm"
//	    config     = { keep_last = 4 }
//	    on_failure = "fail"   # never hand out an unmasked record
//	  }
//	}
package main
