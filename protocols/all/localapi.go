//go:build !custom || protocols.localapi

package all

import _ "github.com/industryos/gateway/protocols/localapi"
