package request

import _ "embed"

// Sample is an example connector file: two polled mappings, an attribute
// update and two RPCs.
//
//go:embed sample.json
var Sample []byte
