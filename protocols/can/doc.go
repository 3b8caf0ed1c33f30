// Package can is the CAN connector: the upstream `can` connector config, the
// uplink (frame → values) and downlink (value → frame data) converters, the
// transports behind one small Bus interface (an in-memory virtual bus,
// SocketCAN through brutella/can, slcan over a serial line) and the connector
// itself, a protocols.Source that reads frames, polls and takes platform
// writes.
package can

//go:generate go test -run ^TestREADME$ -update .
