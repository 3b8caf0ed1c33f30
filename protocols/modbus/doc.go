// Package modbus polls Modbus slaves as configured by the upstream
// ThingsBoard IoT Gateway's modbus connector file (master mode).
package modbus

//go:generate go test -run ^TestREADME$ -update .
