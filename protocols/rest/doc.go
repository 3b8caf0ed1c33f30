// Package rest is the upstream "rest" connector: an HTTP(S) server that
// devices push JSON (or urlencoded forms) to, converted by the MQTT
// connector's JSON converter, plus attribute-request endpoints answered
// from the platform and attribute updates and RPC sent to the devices as
// HTTP requests. It is a push source (protocols.Source): a push is
// answered 200 only once its data is committed to the journal, and 503
// with Retry-After when the gateway cannot take it now. It never imports
// the actors.
package rest

import _ "embed"

// Sample is an example connector file covering every section.
//
//go:embed sample.json
var Sample []byte

//go:generate go test -run ^TestREADME$ -update .
