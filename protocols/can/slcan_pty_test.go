//go:build linux

package can

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
)

// adapter plays a USB-CAN adapter on the master side of a pty; the
// connector opens the slave through a symlink, so a test can swap the
// adapter behind the same path.
type adapter struct {
	master, tty *os.File
	lines       chan string
}

func newAdapter(t *testing.T) *adapter {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	// pty.Open calls Fd(), which leaves the master blocking: its Close would
	// then wait for the reader below and never hang the slave up. A
	// non-blocking duplicate goes through Go's poller, so Close is immediate.
	fd, err := unix.Dup(int(ptmx.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	ptmx.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "ptmx")
	a := &adapter{master: m, tty: tty, lines: make(chan string, 256)}
	go func() {
		defer close(a.lines)
		r := bufio.NewReader(m)
		for {
			line, err := r.ReadString('\r')
			if err != nil {
				return
			}
			a.lines <- strings.TrimSuffix(line, "\r")
		}
	}()
	t.Cleanup(func() {
		a.master.Close()
		a.tty.Close()
	})
	return a
}

func (a *adapter) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got, ok := <-a.lines:
			if !ok {
				t.Fatalf("adapter closed, want %q", w)
			}
			if got != w {
				t.Fatalf("adapter got %q, want %q", got, w)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("adapter got nothing, want %q", w)
		}
	}
}

func (a *adapter) send(t *testing.T, s string) {
	t.Helper()
	if _, err := a.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// link points path at a's tty, atomically.
func (a *adapter) link(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".new"
	os.Remove(tmp)
	if err := os.Symlink(a.tty.Name(), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const slcanCfg = `{"interface":"slcan","channel":%q,"backend":{"bitrate":500000},"reconnectPeriod":0.05,"devices":[
 {"name":"Car","type":"car",
  "attributes":[{"key":"serialNumber","nodeId":1,"isExtendedId":true,"value":"0:-1:string"}],
  "timeseries":[{"key":"temperature","nodeId":258,"value":"0:4:little:float"},{"key":"doorOpen","nodeId":259,"value":"0:1:bool"}],
  "attributeUpdates":[{"attributeOnThingsBoard":"wheelSpeed","nodeId":305,"dataLength":2,"dataByteorder":"little","dataBefore":"00","dataAfter":"ff"}],
  "serverSideRpc":[{"method":"sendSameData","nodeId":4,"isExtendedId":true,"dataInHex":"aa bb cc dd ee ff aa bb"},
   {"method":"setLightLevel","nodeId":5,"dataLength":1},
   {"method":"fdMethod","nodeId":6,"isFd":true,"dataInHex":"01 02 03 04 05 06 07 08 09 0a 0b 0c"}]}]}`

func startSlcan(t *testing.T) (*Connector, *sinktest.Recorder, *adapter, string) {
	t.Helper()
	a := newAdapter(t)
	path := filepath.Join(t.TempDir(), "ttyCAN")
	a.link(t, path)
	c := newConn(t, fmt.Sprintf(slcanCfg, path))
	s := sinktest.New()
	run(t, c, s)
	a.expect(t, "C", "S6", "O")
	s.Wait(t, waitTimeout, "bus open", func() bool { return s.Ups() == 1 })
	return c, s, a, path
}

func TestSlcanOverPty(t *testing.T) {
	c, s, a, path := startSlcan(t)
	ctx := context.Background()

	// Adapter → gateway. Acks, a BELL, a remote request and a garbled
	// line are mixed in; none of them stops the bus.
	a.send(t, "\r\az\rt10250000AC412A\rt1031010123\rT000000012534E\rr1031\rxyz\rt10250000ac412a\r")
	s.Wait(t, waitTimeout, "frames", func() bool {
		return len(s.DataPushes()) == 4 && s.UnmatchedCount() == 1 && len(s.MalformedReports()) == 1
	})
	var got []string
	for _, p := range s.DataPushes() {
		for _, d := range append(p.Reading.Telemetry, p.Reading.Attributes...) {
			got = append(got, fmt.Sprintf("%s.%s=%v", p.Device, d.Key, d.Value))
		}
	}
	if want := "[Car.temperature=21.5 Car.doorOpen=true Car.serialNumber=SN Car.temperature=21.5]"; fmt.Sprint(got) != want {
		t.Errorf("values %v, want %s", got, want)
	}
	if m := s.MalformedReports()[0]; m.Where != "slcan "+path || !errors.Is(m.Err, ErrBadLine) {
		t.Errorf("malformed %v", s.MalformedReports())
	}

	// Gateway → adapter.
	car := c.Commander("Car", "car")
	rpc := func(method, params string) error {
		res, err := car.RPC(ctx, protocols.RPCRequest{ID: 7, Method: method, Params: json.RawMessage(params)})
		if err == nil && string(res) != `{"success":true}` {
			t.Errorf("%s reply %s", method, res)
		}
		return err
	}
	if err := rpc("setLightLevel", "7"); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "t005107")
	if err := rpc("sendSameData", ""); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "T000000048AABBCCDDEEFFAABB")
	// CAN FD: refused with a clear error, nothing written.
	if err := rpc("fdMethod", ""); !errors.Is(err, ErrFDUnsupported) ||
		!strings.HasPrefix(err.Error(), `can device "Car": rpc fdMethod: slcan `+path+`: frame 0x6: CAN FD frames are not supported`) {
		t.Errorf("fd rpc: %v", err)
	}
	if err := rpc("set", `"nodeId=0x7ff;dataInHex=0102"`); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "t7FF20102")
	if _, err := car.UpdateAttributes(ctx, map[string]json.RawMessage{"wheelSpeed": json.RawMessage(`513`)}); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "t1314000102FF")
}

func TestSlcanBusLossAndReopen(t *testing.T) {
	c, s, a1, path := startSlcan(t)
	// Unplug: a new adapter appears behind the same path, the old one dies.
	a2 := newAdapter(t)
	a2.link(t, path)
	a1.master.Close()
	s.Wait(t, waitTimeout, "bus lost", func() bool { return len(s.Links()) >= 2 })
	a2.expect(t, "C", "S6", "O")
	s.Wait(t, waitTimeout, "bus re-opened", func() bool { return s.Ups() == 2 })
	if lost := s.Links()[1]; lost.Up || lost.Err == nil || !strings.HasPrefix(lost.Err.Error(), "slcan "+path+": read: ") {
		t.Errorf("loss reported as %+v", lost)
	}

	a2.send(t, "t1031010123\r")
	s.Wait(t, waitTimeout, "frame after reopen", func() bool { return len(s.DataPushes()) == 1 })
	if _, err := c.Commander("Car", "car").RPC(context.Background(), protocols.RPCRequest{Method: "setLightLevel", Params: json.RawMessage(`9`)}); err != nil {
		t.Fatal(err)
	}
	a2.expect(t, "t005109")
	if st := c.Stats(); st.Opens != 2 || st.Lost != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestSlcanCloseSendsC(t *testing.T) {
	a := newAdapter(t)
	f, err := openSerial(a.tty.Name(), 115200)
	if err != nil {
		t.Fatal(err)
	}
	b := NewSlcanBus(a.tty.Name(), f)
	if err := b.Open(context.Background(), 0, true); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "C", "L")
	done := make(chan error, 1)
	go func() {
		_, err := b.Recv(context.Background())
		done <- err
	}()
	b.Close()
	a.expect(t, "C")
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Recv after Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not unblock Recv")
	}
	if err := b.Send(context.Background(), Frame{ID: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}
