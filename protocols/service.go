package protocols

import (
	"fmt"
	"sort"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// Service is a server of the whole gateway that a protocol runs beside its
// connectors, configured by its own section of the main file (the gRPC
// server that out-of-process connectors register with). The runtime starts
// every configured service before the connectors and stops them after; it
// knows services only through this registry, so a build without the
// protocol links none of the service's code.
type Service interface {
	// Start begins serving. An error is logged and the gateway runs on: the
	// connectors that need the service report their link down.
	Start(log zerolog.Logger) error
	// Stop ends serving; it is called once, after the connectors stopped.
	Stop()
}

// ServiceFactory reads a service's section of the main file (o is never
// nil) and returns the service, or nil when the section leaves it off.
// Problems go to o.Problems(); like a connector factory it does no I/O.
type ServiceFactory func(o *spec.Obj) Service

var services = map[string]ServiceFactory{}

// RegisterService makes a service available under its main-file section
// name. Like Register it panics on an empty name, a nil factory or a
// duplicate: programming errors that must fail at start-up.
func RegisterService(section string, f ServiceFactory) {
	regMu.Lock()
	defer regMu.Unlock()
	if section == "" || f == nil {
		panic("protocols: RegisterService with empty section or nil factory")
	}
	if _, dup := services[section]; dup {
		panic(fmt.Sprintf("protocols: service %q registered twice", section))
	}
	services[section] = f
}

// LookupService returns the factory of the service read from section.
func LookupService(section string) (ServiceFactory, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := services[section]
	return f, ok
}

// Services lists the registered services' sections.
func Services() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(services))
	for s := range services {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
