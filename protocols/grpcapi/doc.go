// Package grpcapi serves the upstream gateway's gRPC connector API
// (messages.proto, package "messages"): a connector written in any language
// runs as its own process, opens the bidirectional stream, registers with
// the key of a "grpc" connector of the main file, and from then on feeds
// that connector's devices and answers their RPC.
//
// One Hub listens for the whole gateway; each configured "grpc" connector is
// a push Source that attaches to the Hub under its key. The data a process
// sends goes through the connector's Sink like any push source's, so it
// meets the same device actors, report strategies and journal; a process
// that goes away is a crashed connector: its devices are disconnected, what
// it sent stays journaled, and the key is free for it to register again.
package grpcapi
