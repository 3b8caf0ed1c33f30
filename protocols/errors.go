package protocols

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
)

// Protocol-independent error kinds. Drivers keep their own sentinels and
// make them match one of these with errors.Is (an Unwrap that also returns
// the kind), so the runtime can count failures by kind without knowing any
// protocol.
var (
	// ErrTimeout means the device did not answer in time.
	ErrTimeout = errors.New("device timeout")
	// ErrException means the device answered with an error of its own (a
	// Modbus exception code, an OPC-UA bad status).
	ErrException = errors.New("device exception")
	// ErrIO means the transport failed: refused, reset, closed, garbled.
	ErrIO = errors.New("device i/o error")
)

// Error kinds as reported by ErrorKind, and used as metric label values.
const (
	KindTimeout   = "timeout"
	KindException = "exception"
	KindIO        = "io"
	KindOther     = "other"
)

// ErrorKinds lists every value ErrorKind returns for a non-nil error.
var ErrorKinds = []string{KindTimeout, KindException, KindIO, KindOther}

// ErrorKind classifies a poll or command error: "" for nil, otherwise one of
// ErrorKinds. The generic sentinels come first; standard library timeouts
// and network errors are recognised for drivers that do not wrap them.
func ErrorKind(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTimeout):
		return KindTimeout
	case errors.Is(err, ErrException):
		return KindException
	case errors.Is(err, ErrIO):
		return KindIO
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	case errors.As(err, &ne):
		if ne.Timeout() {
			return KindTimeout
		}
		return KindIO
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return KindIO
	}
	return KindOther
}
