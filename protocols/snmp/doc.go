// Package snmp polls SNMP agents (v1, v2c and v3) as configured by the
// upstream ThingsBoard IoT Gateway's snmp connector file, and writes to
// them for attribute updates and server-side RPC.
package snmp

//go:generate go test -run ^TestREADME$ -update .
