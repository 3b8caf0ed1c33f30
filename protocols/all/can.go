//go:build !custom || protocols.can

package all

import _ "github.com/industryos/gateway/protocols/can"
