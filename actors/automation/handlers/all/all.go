// Package all registers every automation handler; import it for its side
// effect where automation.yaml is loaded.
package all

import (
	_ "github.com/industryos/gateway/actors/automation/handlers/devicerpc"
	_ "github.com/industryos/gateway/actors/automation/handlers/devicewrite"
	_ "github.com/industryos/gateway/actors/automation/handlers/email"
	_ "github.com/industryos/gateway/actors/automation/handlers/mqttpublish"
	_ "github.com/industryos/gateway/actors/automation/handlers/platform"
	_ "github.com/industryos/gateway/actors/automation/handlers/script"
	_ "github.com/industryos/gateway/actors/automation/handlers/webhook"
)
