// Package template is a protocol to copy: the smallest connector with every
// file a protocol has, talking to a fake in-memory device instead of real
// hardware. It is not linked into the gateway (protocols/all does not
// import it); protocols/README.md says how to turn a copy into a protocol.
//
// Files: config.go (field table and parsing), driver.go (the connector and
// its devices' poll), convert.go (device data to telemetry and attributes),
// commands.go (RPC and attribute updates), fake.go (the stand-in device),
// sample.json, README.md (generated sections), testdata/<case>/ (golden
// cases run by TestGolden).
package template

//go:generate go test -run ^TestREADME$ -update .
