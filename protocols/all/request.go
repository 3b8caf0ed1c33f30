//go:build !custom || protocols.request

package all

import _ "github.com/industryos/gateway/protocols/request"
