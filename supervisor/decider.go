package supervisor

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrConfig marks failures that a restart cannot fix: a bad address, an unknown register
// type, a missing certificate. DefaultDecider stops such a child instead of retrying it.
var ErrConfig = errors.New("configuration error")

// ConfigError wraps err so that errors.Is(result, ErrConfig) holds while err stays
// reachable through errors.Is/As. It returns nil for a nil err.
func ConfigError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrConfig) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrConfig, err)
}

// DefaultDecider stops children that failed with a configuration error (a panic value that
// is an error wrapping ErrConfig) and restarts every other failure.
func DefaultDecider(reason any) actor.Directive {
	if err, ok := reason.(error); ok && errors.Is(err, ErrConfig) {
		return actor.StopDirective
	}
	return actor.RestartDirective
}
