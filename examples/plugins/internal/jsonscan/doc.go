// Package jsonscan validates, compacts and walks JSON documents in place,
// without decoding them into Go values, for the example plugins.
//
// It exists because the example plugins run as WebAssembly, where
// encoding/json is slow (its scanner makes an indirect call per byte) and
// decoding into maps allocates for every value. A walk here is one pass over
// the bytes, reports every value with its path and byte range, and lets a
// plugin rewrite a document by splicing ranges, which keeps member order,
// numbers and formatting as they were. A Matcher does the same for a fixed
// set of paths without building paths or allocating, and AppendCompact
// validates and compacts without allocating: the per-record work of the
// plugins, kept free of calls per byte, which Go compiled to WebAssembly pays
// dearly for.
//
// The accepted syntax is RFC 8259's, as encoding/json.Valid accepts it: bytes
// of strings are not checked to be UTF-8, and nesting is limited to MaxDepth.
package jsonscan
