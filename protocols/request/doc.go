// Package request is the upstream "request" connector: it polls HTTP(S)
// endpoints, each mapping on its own schedule, turns their JSON answers
// into device data with the same ${} expressions as the MQTT connector
// (protocols/jsonexpr), and carries attribute updates and server-side RPC
// to the devices as HTTP requests whose answers become the RPC replies.
// It is a push source (protocols.Source) and takes platform writes
// (protocols.DeviceCommands, protocols.ConnectorRPC); it never imports
// the actors.
package request

//go:generate go test -run ^TestREADME$ -update .
