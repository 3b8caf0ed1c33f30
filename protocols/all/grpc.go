//go:build !custom || protocols.grpc

package all

import _ "github.com/industryos/gateway/protocols/grpcapi"
