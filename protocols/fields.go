package protocols

import (
	"fmt"

	"github.com/industryos/gateway/protocols/kit/spec"
)

var fieldTables = map[string][]spec.Section{}

// RegisterFields records a protocol's field tables (the ones its parser
// reads through) so `iotgw check -fields <type>` can show them next to the
// problems check reports. Call it from the protocol's init, after Register.
func RegisterFields(typ string, sections []spec.Section) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := fieldTables[typ]; dup {
		panic(fmt.Sprintf("protocols: fields of %q registered twice", typ))
	}
	fieldTables[typ] = sections
}

// Fields returns typ's field tables.
func Fields(typ string) ([]spec.Section, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	s, ok := fieldTables[typ]
	return s, ok
}
