package localapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/industryos/gateway/protocols"
)

// What a device sends: the two uplink resources every transport serves.
const (
	kindTelemetry  = "telemetry"
	kindAttributes = "attributes"
)

// devicePushes turns a device's telemetry or attributes payload into the
// pushes for the runtime.
func devicePushes(d *Device, kind string, payload []byte) ([]protocols.Push, error) {
	if kind == kindAttributes {
		dps, err := ParseAttributes(payload)
		if err != nil {
			return nil, err
		}
		return []protocols.Push{{Device: d.Name, Profile: d.Profile, Report: d.Report, Reading: protocols.Reading{Attributes: dps}}}, nil
	}
	samples, err := ParseTelemetry(payload)
	if err != nil {
		return nil, err
	}
	pushes := make([]protocols.Push, len(samples))
	for i, sm := range samples {
		pushes[i] = protocols.Push{Device: d.Name, Profile: d.Profile, Report: d.Report, Ts: sm.Ts, Reading: protocols.Reading{Telemetry: sm.Values}}
	}
	return pushes, nil
}

// errNotAccepted: the runtime took no push (it is stopping); errNotCommitted:
// the journal did not keep it. Either way the device is not acknowledged.
var (
	errNotAccepted  = errors.New("not accepted")
	errNotCommitted = errors.New("not committed")
)

// commitAll hands the pushes to the runtime and returns once every one is
// committed (nil), one failed, or ctx ended: a request-response transport
// (HTTP, CoAP) answers success only on nil.
func commitAll(ctx context.Context, sink protocols.Sink, pushes []protocols.Push) error {
	done := make(chan error, len(pushes))
	for i := range pushes {
		pushes[i].Done = func(err error) { done <- err }
		if err := sink.Push(ctx, pushes[i]); err != nil {
			return fmt.Errorf("%w: %w", errNotAccepted, err)
		}
	}
	for range pushes {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%w: %w", errNotCommitted, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
