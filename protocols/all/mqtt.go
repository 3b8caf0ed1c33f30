//go:build !custom || protocols.mqtt

package all

import _ "github.com/industryos/gateway/protocols/mqtt"
