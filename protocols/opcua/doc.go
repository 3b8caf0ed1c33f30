// Package opcua is the OPC-UA connector: the upstream `opcua` connector
// file, node ids, path expressions and reserved get/set RPC params (pure,
// no I/O), and a gopcua driver that is a protocols.Source with device
// commands and connector RPC (driver.go).
package opcua

//go:generate go test -run ^TestREADME$ -update .
