// Package jsonconv turns device payloads into datapoints the way upstream's
// uplink converters do: the "json" converter (${path} expressions, a fast
// path for flat objects and a general one for everything else), the "bytes"
// converter, registered Go ("custom") converters, value conversion by
// configured type and device timestamps, plus the mapping those converters
// are built from.
//
// It is plain Go with no connector or actor imports, so that connectors can
// share it without importing each other: mqtt builds its mapping[] on it,
// rest runs its endpoints' converters with it, and request uses its value
// conversion, timestamps, errors and custom converter registry.
package jsonconv
