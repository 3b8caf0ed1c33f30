package modbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// rtuMaster is the master end of a line in the tests: it writes request
// frames and reads answer frames, cut by the answer's length rules.
type rtuMaster struct {
	t    *testing.T
	conn net.Conn
}

// read returns the next answer frame, or nil when none comes within wait.
func (m *rtuMaster) read(wait time.Duration) []byte {
	m.t.Helper()
	var buf []byte
	chunk := make([]byte, rtuMaxFrame)
	_ = m.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		want := 0
		if len(buf) >= 3 {
			switch fc := buf[1]; {
			case fc&0x80 != 0:
				want = 5
			case fc <= 4:
				want = 5 + int(buf[2])
			default:
				want = 8
			}
		}
		if want > 0 && len(buf) >= want {
			if len(buf) > want || !crcOK(buf) {
				m.t.Fatalf("answer % x is not one frame", buf)
			}
			return buf
		}
		n, err := m.conn.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) && len(buf) == 0 {
			return nil
		}
		if err != nil {
			m.t.Fatalf("read answer (have % x): %v", buf, err)
		}
	}
}

func (m *rtuMaster) send(frame []byte) {
	m.t.Helper()
	if _, err := m.conn.Write(frame); err != nil {
		m.t.Fatal(err)
	}
}

// ask sends unit's request pdu and returns the answer's PDU.
func (m *rtuMaster) ask(unit byte, pdu []byte) []byte {
	m.t.Helper()
	m.send(appendRTU(nil, unit, pdu))
	ans := m.read(testpeer.MinTimeout)
	if ans == nil {
		m.t.Fatalf("no answer to % x", pdu)
	}
	if ans[0] != unit {
		m.t.Fatalf("asked unit %d, answered by % x", unit, ans)
	}
	return ans[1 : len(ans)-2]
}

// waitSilence waits until the server has counted n bad frames and is past
// the silence after the last: what a master on a real line gets by
// keeping quiet 3.5 characters before its next frame.
func waitSilence(t *testing.T, s *rtuServer, n uint64) {
	t.Helper()
	testpeer.Eventually(t, 5*time.Second, "the server past a bad frame", func() error {
		if got := s.stats.BadCRC.Load() + s.stats.Garbage.Load(); got < n || s.skipping.Load() {
			return fmt.Errorf("bad frames %d (want %d), skipping %v", got, n, s.skipping.Load())
		}
		return nil
	})
}

// TestRTUServerLine runs the serial server on an in-memory line: reads,
// writes and exceptions as the TCP server answers them, frames for other
// units and frames with a bad CRC ignored, broadcast writes applied without
// an answer, a function code without a length rule cut by the silence.
func TestRTUServerLine(t *testing.T) {
	line, master := net.Pipe()
	defer master.Close()
	store := NewStore([]ServerValue{{Table: 3, Key: &KeyConfig{Address: 5}, Regs: []uint16{1234}}})
	stats := &RTUStats{}
	s := newRTUServer(line, "pipe", 1, store, time.Millisecond, 20*time.Millisecond, zerolog.Nop(), stats)
	go s.run()
	defer s.close()
	m := &rtuMaster{t: t, conn: master}
	hr5 := []byte{3, 0, 5, 0, 1}

	if got := m.ask(1, hr5); !bytes.Equal(got, []byte{3, 2, 0x04, 0xd2}) {
		t.Fatalf("read hr 5: % x", got)
	}

	// Another unit's write: no answer, no change; the next answer on the
	// line is unit 1's.
	m.send(appendRTU(nil, 2, []byte{6, 0, 5, 0, 1}))
	if got := m.ask(1, hr5); !bytes.Equal(got, []byte{3, 2, 0x04, 0xd2}) || stats.Ignored.Load() != 1 {
		t.Fatalf("after unit 2's write: % x, ignored %d", got, stats.Ignored.Load())
	}

	// A write whose CRC is bad is not applied.
	bad := appendRTU(nil, 1, []byte{6, 0, 5, 0, 1})
	bad[len(bad)-1] ^= 0x55
	m.send(bad)
	waitSilence(t, s, 1)
	if got := m.ask(1, hr5); !bytes.Equal(got, []byte{3, 2, 0x04, 0xd2}) || stats.BadCRC.Load() != 1 {
		t.Fatalf("after a bad CRC: % x, bad CRC %d", got, stats.BadCRC.Load())
	}

	// A broadcast write is applied and not answered: the next answer is
	// the read's.
	m.send(appendRTU(nil, 0, []byte{6, 0, 5, 0, 77}))
	if got := m.ask(1, hr5); !bytes.Equal(got, []byte{3, 2, 0, 77}) || stats.Broadcast.Load() != 1 {
		t.Fatalf("after a broadcast write: % x, broadcasts %d", got, stats.Broadcast.Load())
	}

	for _, tc := range []struct{ name, req, want string }{
		{"write registers", "10 0006 0002 04 0102 0304", "10 0006 0002"},
		{"read them", "03 0005 0003", "03 06 004d 0102 0304"},
		{"write coils", "0f 0003 000a 02 ff 03", "0f 0003 000a"},
		{"read coils", "01 0002 000c", "01 02 fe 07"},
		{"write coil", "05 0004 0000", "05 0004 0000"},
		{"read coils after", "01 0002 0004", "01 01 0a"},
		{"input registers", "04 0000 0002", "04 04 0000 0000"},
		{"discrete inputs", "02 fff8 0008", "02 01 00"},
		{"past the table", "03 ffff 0002", "83 02"},
		{"no quantity", "03 0000 0000", "83 03"},
		{"too many registers", "03 0000 007e", "83 03"},
		{"coil value", "05 0000 1234", "85 03"},
		{"byte count mismatch", "10 0000 0002 02 0102", "90 03"},
		{"unknown function by its silence", "2b 0e 01 00", "ab 01"},
		{"diagnostics", "08 0000 1234", "88 01"},
	} {
		req := unhex(t, strings.ReplaceAll(tc.req, " ", ""))
		if got := m.ask(1, req); !bytes.Equal(got, unhex(t, strings.ReplaceAll(tc.want, " ", ""))) {
			t.Errorf("%s: % x answered % x, want %s", tc.name, req, got, tc.want)
		}
	}
}

// TestRTUServerLineEnds: the server's read fails when the line goes away;
// close after that returns.
func TestRTUServerLineEnds(t *testing.T) {
	line, master := net.Pipe()
	s := newRTUServer(line, "pipe", 1, NewStore(nil), time.Millisecond, 20*time.Millisecond, zerolog.Nop(), &RTUStats{})
	go s.run()
	master.Close()
	<-s.done
	if s.err == nil || !strings.Contains(s.err.Error(), "modbus serial server pipe: ") {
		t.Fatalf("err %v", s.err)
	}
	s.close()
}

// serialServerFile is a `slave` section serving unit 1 on the serial line
// at path: timeseries and attributes the platform reads, a shared
// attribute and an RPC the platform writes, a coil.
func serialServerFile(path string, unit int) []byte {
	return fmt.Appendf(nil, `{"slave":{"type":"serial","method":"rtu","port":%q,"baudrate":19200,"unitId":%d,
	 "deviceName":"Line Slave","pollPeriod":100,"sendDataToThingsBoard":true,"byteOrder":"BIG","wordOrder":"BIG",
	 "values":{
	  "holding_registers":{
	   "timeseries":[{"tag":"speed","type":"16uint","address":0,"objectsCount":1,"value":42}],
	   "attributes":[{"tag":"mode","type":"16int","address":1,"objectsCount":1,"value":-2}],
	   "attributeUpdates":[{"tag":"setpoint","type":"32int","functionCode":16,"address":10,"objectsCount":2,"value":0}],
	   "rpc":[{"tag":"setLimit","type":"16uint","functionCode":6,"address":12,"objectsCount":1,"value":0}]},
	  "coils_initializer":{"timeseries":[{"tag":"run","type":"bit","address":3,"objectsCount":1,"value":true}]}}}}`, path, unit)
}

// TestSerialServerPymodbus: the `slave` section served on one end of a
// socat pty pair, pymodbus's RTU master on the other. The master reads the
// configured values; its writes reach the reporting device's next poll;
// the platform's shared attribute and RPC land in the registers it reads;
// a frame with a bad CRC and one for another unit change nothing.
func TestSerialServerPymodbus(t *testing.T) {
	testpeer.NeedPymodbus(t)
	a, b := testpeer.PtyPair(t)
	c := connector(t, serialServerFile(b, 1))
	d := c.Device("Line Slave")
	if d == nil {
		t.Fatal("reporting device missing")
	}
	poll := func() (map[string]protocols.Value, map[string]protocols.Value) {
		t.Helper()
		r, err := d.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return values(r.Telemetry), values(r.Attributes)
	}
	tele, attrs := poll() // starts the server
	if !sameValue(tele["speed"], protocols.Uint(42)) || !sameValue(attrs["mode"], protocols.Int(-2)) || !sameValue(tele["run"], protocols.Bool(true)) {
		t.Fatalf("first poll: telemetry %v attributes %v", tele, attrs)
	}

	got := testpeer.PySerialMaster(t, a, 19200, "hr:0:2", "co:3:1", "hr:9:5")
	if want := "hr 0 [42,65534]|co 3 [1]|hr 9 [0,0,0,0,0]"; strings.Join(got, "|") != want {
		t.Fatalf("master read %q, want %q", got, want)
	}

	// Master → platform: writes show up in the next poll.
	if got := testpeer.PySerialMaster(t, a, 0, "whr:0:4242", "wr:1:7", "wco:3:0"); strings.Join(got, "|") != "ok|ok|ok" {
		t.Fatalf("master writes: %v", got)
	}
	tele, attrs = poll()
	if !sameValue(tele["speed"], protocols.Uint(4242)) || !sameValue(attrs["mode"], protocols.Int(7)) || !sameValue(tele["run"], protocols.Bool(false)) {
		t.Errorf("after the master's writes: telemetry %v attributes %v", tele, attrs)
	}

	// Platform → master: the shared attribute and the RPC write registers.
	if _, err := d.UpdateAttributes(context.Background(), map[string]json.RawMessage{"setpoint": json.RawMessage("70000")}); err != nil {
		t.Fatal(err)
	}
	rpc(t, d, "setLimit", "900")
	if got := testpeer.PySerialMaster(t, a, 0, "hr:10:3")[0]; got != "hr 10 [1,4464,900]" { // 70000 = 0x0001_1170
		t.Errorf("after the platform's writes: %s", got)
	}

	// Frames the server must not act on, written straight onto the line:
	// a good write for unit 2, then one with a bad CRC (last, since the
	// server skips what follows it until the line is silent).
	f, err := os.OpenFile(a, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(appendRTU(nil, 2, []byte{6, 0, 0, 0, 2})); err != nil {
		t.Fatal(err)
	}
	c.server.waitStat(t, "ignored", &c.server.Stats.Ignored, 1)
	bad := appendRTU(nil, 1, []byte{6, 0, 0, 0, 1})
	bad[len(bad)-2] ^= 0xff
	if _, err := f.Write(bad); err != nil {
		t.Fatal(err)
	}
	c.server.waitStat(t, "bad CRC", &c.server.Stats.BadCRC, 1)
	c.server.mu.Lock()
	rtu := c.server.rtu
	c.server.mu.Unlock()
	waitSilence(t, rtu, 1)
	f.Close()
	if got := testpeer.PySerialMaster(t, a, 0, "hr:0:1", "hr:99:1")[0]; got != "hr 0 [4242]" {
		t.Errorf("after a bad CRC and another unit's write: %s", got)
	}

	// Exceptions and the broadcast.
	got = testpeer.PySerialMaster(t, a, 0, "hr:65535:2", "unit:0:", "wr:0:5", "unit:1:", "hr:0:1")
	if len(got) != 3 || !strings.Contains(got[0], "error") || got[1] != "ok" || got[2] != "hr 0 [5]" {
		t.Errorf("exception, broadcast: %q", got)
	}
	if n := c.server.Stats.Broadcast.Load(); n != 1 {
		t.Errorf("broadcasts %d, want 1", n)
	}
}

// waitStat waits until the counter reaches n.
func (s *server) waitStat(t *testing.T, what string, c interface{ Load() uint64 }, n uint64) {
	t.Helper()
	testpeer.Eventually(t, 5*time.Second, what+" counted", func() error {
		if got := c.Load(); got != n {
			return fmt.Errorf("%s: %d, want %d", what, got, n)
		}
		return nil
	})
}

// TestSerialServerEveryUnit: unitId 0, upstream's default, answers every
// unit as upstream's single-context server does.
func TestSerialServerEveryUnit(t *testing.T) {
	testpeer.NeedPymodbus(t)
	a, b := testpeer.PtyPair(t)
	c := connector(t, serialServerFile(b, 0))
	if _, err := c.Device("Line Slave").Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := testpeer.PySerialMaster(t, a, 0, "unit:7:", "hr:0:1", "unit:200:", "hr:1:1"); strings.Join(got, "|") != "hr 0 [42]|hr 1 [65534]" {
		t.Fatalf("units 7 and 200: %q", got)
	}
}

// TestSerialServerNoLine: a serial device that is not there fails the
// reporting device's poll, naming the line and the section.
func TestSerialServerNoLine(t *testing.T) {
	path := t.TempDir() + "/none"
	c := connector(t, serialServerFile(path, 1))
	_, err := c.Device("Line Slave").Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "modbus serial server "+path+" (slave): open") {
		t.Fatalf("missing line: %v", err)
	}
}

// BenchmarkRTUServer measures the serial server's request path on an
// in-memory line: a 10-register read framed, answered from the store and
// framed back.
func BenchmarkRTUServer(b *testing.B) {
	line, master := net.Pipe()
	defer master.Close()
	s := newRTUServer(line, "pipe", 1, NewStore(nil), time.Millisecond, 20*time.Millisecond, zerolog.Nop(), &RTUStats{})
	go s.run()
	defer s.close()
	req := appendRTU(nil, 1, []byte{3, 0, 100, 0, 10})
	ans := make([]byte, 25)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := master.Write(req); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(ans); {
			n, err := master.Read(ans[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
	b.ReportMetric(float64(b.N)*10/b.Elapsed().Seconds(), "values/s")
}
