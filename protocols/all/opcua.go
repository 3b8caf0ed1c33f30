//go:build !custom || protocols.opcua

package all

import _ "github.com/industryos/gateway/protocols/opcua"
