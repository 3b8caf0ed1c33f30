package config

import (
	"crypto/sha256"
	"encoding/json"
	"sort"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Service is a gateway-wide server of a protocol, configured by its own
// section of the main file (see protocols.Service).
type Service struct {
	Section string
	Service protocols.Service
	// Sum is the SHA-256 of the section: Diff tells an edited one by it.
	Sum [sha256.Size]byte
}

// serviceTags are the main-file sections a build-tagged protocol serves,
// with the tag that links it. The file format knows them whether or not the
// protocol is linked, so a build without it can say which tag is missing
// instead of ignoring a section that asks for the service.
var serviceTags = map[string]string{"grpc": "protocols.grpc"}

// parseServices builds the services of the registered protocols whose
// sections are present and switched on.
func parseServices(root *spec.Obj) []Service {
	sections := map[string]bool{}
	for s := range serviceTags {
		sections[s] = true
	}
	for _, s := range protocols.Services() {
		sections[s] = true
	}
	names := make([]string, 0, len(sections))
	for s := range sections {
		names = append(names, s)
	}
	sort.Strings(names)
	var out []Service
	for _, name := range names {
		if !root.Has(name) {
			continue
		}
		o := root.Obj(name)
		if o == nil {
			continue // not an object: reported by Obj
		}
		factory, ok := protocols.LookupService(name)
		if !ok {
			// The keys are not read: they belong to a protocol this build
			// lacks. Off (upstream's default file has "enabled": false) is
			// fine; on is an error, or the operator would wait for a server
			// that never listens.
			if o.Bool("enabled", false) {
				o.Errorf("enabled", "the %s server is not in this build: build with the tag %s (or without the tag custom, which links every protocol)",
					name, serviceTags[name])
			}
			continue
		}
		svc := factory(o)
		if svc == nil {
			continue
		}
		raw, _ := json.Marshal(o.Raw())
		out = append(out, Service{Section: name, Service: svc, Sum: sha256.Sum256(raw)})
	}
	return out
}
