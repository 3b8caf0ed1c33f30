package protocols

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

type kindErr struct{ class, err error }

func (e *kindErr) Error() string   { return e.err.Error() }
func (e *kindErr) Unwrap() []error { return []error{e.class, e.err} }

func TestErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("slave 3: %w", ErrTimeout), KindTimeout},
		{&kindErr{ErrException, errors.New("illegal data address")}, KindException},
		{&kindErr{ErrIO, io.EOF}, KindIO},
		{context.DeadlineExceeded, KindTimeout},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), KindTimeout},
		{io.ErrUnexpectedEOF, KindIO},
		{&os.SyscallError{Syscall: "connect", Err: errors.New("refused")}, KindOther},
		{errors.New("value does not fit"), KindOther},
	} {
		if got := ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
