package mqtt

import _ "embed"

// Sample is an example connector file covering each converter type and
// every requestsMapping section.
//
//go:embed sample.json
var Sample []byte
