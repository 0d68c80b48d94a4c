// Package abi is the host side of the kpipe plugin ABI v1 (sdk/ABI.md): the
// names and status codes a guest and the host agree on, and the codec that
// writes records and acknowledgements into guest memory and reads the
// records a guest returns.
//
// The codec is pure Go and knows nothing about wazero: encoders write into a
// caller-supplied []byte (in practice a view of guest memory) and decoders
// read from one. Encoding never allocates. Decoding validates the whole
// input before it changes anything, so a malformed result leaves the
// destination record as it was.
package abi
