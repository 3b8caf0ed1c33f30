package all

import _ "github.com/industryos/gateway/protocols/rest"
