//go:build custom && !protocols.mqtt && !protocols.rest && !protocols.request && !protocols.socket && !protocols.can

package main

import (
	"fmt"
	"io"
)

// cmdConvert in a build without any protocol that runs scripts: the
// Starlark interpreter (about 1 MB) is left out of such small builds.
func cmdConvert(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "iotgw convert: this build has no script converters (it was built with -tags custom and none of protocols.mqtt, rest, request, socket, can)")
	return 2
}
