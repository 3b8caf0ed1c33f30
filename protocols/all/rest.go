//go:build !custom || protocols.rest

package all

import _ "github.com/industryos/gateway/protocols/rest"
