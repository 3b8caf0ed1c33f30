// Package pahoconn adapts a net.Conn to how paho.golang reads and writes
// packets. Both MQTT sides of the gateway use it: the platform client
// (northbound) and the MQTT connector (southbound).
package pahoconn

import (
	"bufio"
	"net"
	"sync"
)

// Wrap prepares a connection for paho.golang. Reads are buffered, because
// paho reads a packet's fixed header byte by byte. Writes are serialised per
// packet and sent in one piece: paho holds the connection's sync.Locker while
// it writes a packet as several pieces through net.Buffers, which writes them
// one syscall (and, with TCP_NODELAY, one TCP segment or TLS record) each
// unless the writer is the runtime's own *net.TCPConn. So the pieces written
// under the lock are gathered and sent when paho unlocks.
func Wrap(c net.Conn) net.Conn {
	return &pahoConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}
}

// WrapNotify is Wrap, and calls published after each PUBLISH packet has been
// written, outside the connection's lock: a publisher that must keep its
// messages in order learns when the next one may go (paho's Publish returns
// only at the acknowledgement).
func WrapNotify(c net.Conn, published func()) net.Conn {
	return &pahoConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10), published: published}
}

// maxGather bounds what a packet's pieces are gathered into; a larger piece
// is written as it comes (after what is gathered), since one more syscall is
// cheap next to its copy.
const maxGather = 16 << 10

// pahoConn is the connection Wrap returns. Every Write must happen under
// Lock, as paho's ControlPacket.WriteTo does for every packet it sends.
type pahoConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	pending []byte // this packet's pieces, sent at Unlock
	err     error  // the first failed send; later writes return it

	published func() // see WrapNotify; nil for none
	header    byte   // the first byte of the packet being written, 0 before it
}

func (c *pahoConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *pahoConn) Lock() { c.mu.Lock() }

func (c *pahoConn) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.header == 0 && len(b) > 0 {
		c.header = b[0]
	}
	if len(c.pending)+len(b) <= maxGather {
		c.pending = append(c.pending, b...)
		return len(b), nil
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

// Unlock sends the packet. Paho has already been told its write succeeded,
// so a failure here closes the connection: paho's reader fails at once and
// the session goes down, and a QoS 1 publish waiting for its PUBACK returns
// an error, so nothing is taken as delivered.
func (c *pahoConn) Unlock() {
	// MQTT packet type 3, in the fixed header's high nibble, is PUBLISH.
	isPublish := c.header>>4 == 3
	c.header = 0
	_ = c.flush()
	c.mu.Unlock()
	if isPublish && c.published != nil {
		c.published()
	}
}

func (c *pahoConn) flush() error {
	if len(c.pending) == 0 || c.err != nil {
		c.pending = c.pending[:0]
		return c.err
	}
	_, err := c.Conn.Write(c.pending)
	c.pending = c.pending[:0]
	if err != nil {
		c.fail(err)
	}
	return err
}

func (c *pahoConn) fail(err error) {
	c.err = err
	_ = c.Conn.Close()
}
