package socket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrTooLong is returned for a line longer than bufferSize; the reader has
// skipped it and goes on with the next line.
var ErrTooLong = errors.New("message longer than bufferSize")

// Framer splits a TCP stream into messages. A returned message is valid
// until the next call.
type Framer interface {
	// Next returns the next message; io.EOF when the stream ended cleanly
	// (a final unterminated line is returned first), ErrTooLong for a line
	// that was skipped (call Next again), any other error when the stream
	// broke.
	Next() ([]byte, error)
}

// NewFramer returns the framer named by framing over r.
func NewFramer(framing string, r io.Reader, bufferSize int) Framer {
	switch framing {
	case FramingFixed:
		return &fixedFramer{r: r, buf: make([]byte, bufferSize)}
	case FramingRead:
		return &readFramer{r: r, buf: make([]byte, bufferSize)}
	}
	// Room for the terminator beside bufferSize bytes of data.
	return &lineFramer{r: bufio.NewReaderSize(r, bufferSize+2), max: bufferSize}
}

type lineFramer struct {
	r   *bufio.Reader
	max int
}

func (f *lineFramer) Next() ([]byte, error) {
	for {
		line, err := f.r.ReadSlice('\n')
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			if len(line) > f.max {
				return nil, fmt.Errorf("%w (%d bytes): line dropped", ErrTooLong, f.max)
			}
			if len(line) == 0 {
				continue // an empty line carries nothing
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			// Skip to the end of this line, however long it is.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = f.r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, fmt.Errorf("%w (%d bytes): line dropped", ErrTooLong, f.max)
		case errors.Is(err, io.EOF) && len(line) > 0:
			// The peer closed after an unterminated last line: still a message.
			line = bytes.TrimSuffix(line, []byte("\r"))
			switch {
			case len(line) == 0:
				return nil, io.EOF
			case len(line) > f.max:
				return nil, fmt.Errorf("%w (%d bytes): line dropped", ErrTooLong, f.max)
			}
			return line, nil
		default:
			return nil, err
		}
	}
}

type fixedFramer struct {
	r   io.Reader
	buf []byte
}

func (f *fixedFramer) Next() ([]byte, error) {
	n, err := io.ReadFull(f.r, f.buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("stream ended inside a %d-byte message (%d bytes dropped): %w", len(f.buf), n, err)
	}
	if err != nil {
		return nil, err
	}
	return f.buf, nil
}

type readFramer struct {
	r   io.Reader
	buf []byte
}

func (f *readFramer) Next() ([]byte, error) {
	for {
		n, err := f.r.Read(f.buf)
		if n > 0 {
			return f.buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}
