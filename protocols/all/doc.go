// Package all links the built-in protocols into the binary, one file per
// protocol. By default every protocol is linked; a build with the tag
// `custom` links only the protocols named by `protocols.<name>` tags:
//
//	go build -tags custom,protocols.modbus ./cmd/iotgw
//
// builds a Modbus-only gateway. Each file carries
// `//go:build !custom || protocols.<name>`.
package all
