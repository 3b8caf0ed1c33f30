//go:build !custom || protocols.modbus

package all

import _ "github.com/industryos/gateway/protocols/modbus"
