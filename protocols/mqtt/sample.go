// Package mqtt is the upstream "mqtt" connector's config and uplink
// converters. It does no I/O: the broker client and the actor wiring build
// on it.
package mqtt

import _ "embed"

// Sample is an example connector file covering each converter type.
//
//go:embed sample.json
var Sample []byte
