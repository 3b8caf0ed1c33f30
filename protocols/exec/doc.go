// Package exec is the "exec" connector (ours; upstream has none): it runs a
// program in any language and reads newline-delimited JSON records from
// its stdout, one device's data per line, and writes platform commands
// (RPC, attribute updates) to its stdin as JSON lines. The program is
// restarted with backoff when it exits. It is the simple way to add a
// device type without Go and without upstream's gRPC API.
//
// Files: config.go (field table and parsing), driver.go (the process, its
// supervision and the stdout reader), convert.go (one stdout line to a
// record), commands.go (RPC and attribute updates on stdin), sample.json,
// README.md, testdata/<case>/ (golden cases run by TestGolden).
package exec

//go:generate go test -run ^TestREADME$ -update .
