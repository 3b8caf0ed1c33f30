//go:build !custom || protocols.socket

package all

import _ "github.com/industryos/gateway/protocols/socket"
