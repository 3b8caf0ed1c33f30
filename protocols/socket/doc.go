// Package socket is the `socket` connector: upstream's socket.json loaded
// unchanged. The gateway listens on TCP or UDP; every message a peer sends
// is matched against the devices' address filters ("ip:port", `*`
// wildcards) and each matching device turns it into string values by byte
// slices (byteFrom/byteTo) decoded with the device's encoding. Attribute
// requests found in the data are answered on the same connection;
// attribute updates and RPC are written to the device's connection (the
// last one it sent data on).
//
// Upstream treats each recv() of bufferSize bytes as one message, so on
// TCP a message split by the network is converted as two and two messages
// sent back to back as one. Here a TCP message is a line (framing "line",
// the default), exactly bufferSize bytes ("fixed"), or one read as
// upstream ("read"); a UDP message is one datagram. It imports no actor
// code.
package socket

//go:generate go test -run ^TestREADME$ -update .
