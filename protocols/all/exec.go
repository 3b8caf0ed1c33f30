//go:build !custom || protocols.exec

package all

import _ "github.com/industryos/gateway/protocols/exec"
