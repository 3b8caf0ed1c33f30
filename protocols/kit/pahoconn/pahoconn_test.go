package pahoconn

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// recordConn records each Write the connection receives.
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
	closed bool
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (c *recordConn) Close() error { c.closed = true; return nil }

func publishPacket(payload []byte) *packets.Publish {
	return &packets.Publish{Topic: "v1/gateway/telemetry", QoS: 1, PacketID: 7, Payload: payload, Properties: &packets.Properties{}}
}

func encodePacket(t *testing.T, p *packets.Publish) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := p.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPahoConnOneWritePerPacket: paho writes a publish in four pieces; the
// connection sends it with one write, byte for byte, and a payload larger
// than what is gathered still arrives whole and in order.
func TestPahoConnOneWritePerPacket(t *testing.T) {
	for _, size := range []int{160, maxGather + 1} {
		rc := &recordConn{}
		c := Wrap(rc)
		p := publishPacket(bytes.Repeat([]byte{'x'}, size))
		if _, err := p.WriteTo(c); err != nil {
			t.Fatal(err)
		}
		want := encodePacket(t, p)
		if got := bytes.Join(rc.writes, nil); !bytes.Equal(got, want) {
			t.Fatalf("payload %d: sent %d bytes, want the packet's %d", size, len(got), len(want))
		}
		if size < maxGather && len(rc.writes) != 1 {
			t.Errorf("payload %d: %d writes, want 1", size, len(rc.writes))
		}
	}
}

// TestPahoConnConcurrentPackets: packets written from several goroutines
// are never interleaved.
func TestPahoConnConcurrentPackets(t *testing.T) {
	rc := &recordConn{}
	c := Wrap(rc)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := publishPacket(bytes.Repeat([]byte{byte('a' + g)}, 50+g)).WriteTo(c); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if len(rc.writes) != 400 {
		t.Fatalf("%d writes, want one per packet (400)", len(rc.writes))
	}
	for _, w := range rc.writes {
		p, err := packets.ReadPacket(bytes.NewReader(w))
		if err != nil {
			t.Fatalf("write is not one whole packet: %v", err)
		}
		pl := p.Content.(*packets.Publish).Payload
		if bytes.Count(pl, pl[:1]) != len(pl) {
			t.Fatalf("packets interleaved: payload %q", pl)
		}
	}
}

// TestPahoConnSendFailure: a failed send (noticed only after paho was told
// the write succeeded) closes the connection, so the session goes down and no
// publish is taken as delivered, and every later write fails.
func TestPahoConnSendFailure(t *testing.T) {
	broken := errors.New("connection reset")
	rc := &recordConn{fail: broken}
	c := Wrap(rc)
	_, _ = publishPacket([]byte("1")).WriteTo(c)
	if !rc.closed {
		t.Fatal("connection not closed after a failed send")
	}
	if _, err := publishPacket([]byte("2")).WriteTo(c); !errors.Is(err, broken) {
		t.Fatalf("write after a failed send: %v, want %v", err, broken)
	}
}

// TestWrapNotifyPublishOnly: the hook runs once per PUBLISH written, small
// or larger than what is gathered, and not for other packets.
func TestWrapNotifyPublishOnly(t *testing.T) {
	rc := &recordConn{}
	n := 0
	c := WrapNotify(rc, func() { n++ })
	if _, err := (&packets.Puback{PacketID: 3, Properties: &packets.Properties{}}).WriteTo(c); err != nil {
		t.Fatal(err)
	}
	if _, err := (&packets.Pingreq{}).WriteTo(c); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("hook ran %d times for a PUBACK and a PINGREQ", n)
	}
	for i, size := range []int{10, maxGather + 1} {
		if _, err := publishPacket(bytes.Repeat([]byte{'x'}, size)).WriteTo(c); err != nil {
			t.Fatal(err)
		}
		if n != i+1 {
			t.Fatalf("after %d publishes the hook ran %d times", i+1, n)
		}
	}
}
