// Package mqtt is the upstream "mqtt" connector: its config, the uplink
// converters, the broker connection (MQTT 3.1/3.1.1 via paho.mqtt.golang,
// MQTT 5 via paho.golang) and the requests mapping. It is a push source
// (protocols.Source) and takes platform writes (protocols.DeviceCommands);
// the runtime in actors/ drives it and it never imports the actors.
package mqtt

//go:generate go test -run ^TestREADME$ -update .
