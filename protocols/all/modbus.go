// Package all links every built-in protocol into the binary; a build that
// wants fewer protocols imports the individual packages instead.
package all

import _ "github.com/industryos/gateway/protocols/modbus"
