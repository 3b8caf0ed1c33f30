package modbus

import (
	"errors"
	"io"
	"testing"

	mb "github.com/simonvetter/modbus"

	"github.com/industryos/gateway/protocols"
)

// TestGenericErrorKinds: classified errors also match the protocol-independent
// kinds the runtime counts poll errors by.
func TestGenericErrorKinds(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{mb.ErrRequestTimedOut, protocols.KindTimeout},
		{mb.ErrIllegalDataAddress, protocols.KindException},
		{io.EOF, protocols.KindIO},
	} {
		err, _ := classify(c.err)
		if got := protocols.ErrorKind(err); got != c.want {
			t.Errorf("%v: kind %q, want %q", c.err, got, c.want)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%v: the library error is no longer in the chain", c.err)
		}
	}
}
