//go:build !custom || protocols.snmp

package all

import _ "github.com/industryos/gateway/protocols/snmp"
