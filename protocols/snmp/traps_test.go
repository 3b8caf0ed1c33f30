package snmp

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// trapJSON is a connector file whose trap receiver listens on port, with
// one polled device at devIP (its traps go to that device) and the
// fallback device "trap sink".
func trapJSON(port int, devIP string) string {
	return fmt.Sprintf(`{"devices":[{"deviceName":"agent","deviceType":"router","ip":%q,"community":"public","pollPeriod":60000,
 "telemetry":[{"key":"uptime","method":"get","oid":"1.3.6.1.2.1.1.3.0"}]}],
 "traps":{"port":%d,"communities":["public"],"deviceName":"trap sink","deviceType":"traps","engineId":"80001f8880c0ffee0001",
  "users":[{"user":"trapper","authProtocol":"SHA","authKey":"auth-pass-1","privacyProtocol":"AES","privacyKey":"priv-pass-1"}],
  "mapping":[
   {"trapOid":"1.3.6.1.6.3.1.1.5.3","trapKey":"lastTrap",
    "telemetry":[{"key":"ifIndex","oid":"1.3.6.1.2.1.2.2.1.1"},{"key":"ifDescr","oid":"1.3.6.1.2.1.2.2.1.2"}],
    "attributes":[{"key":"ifAlias","oid":"1.3.6.1.2.1.31.1.1.1.18"}]},
   {"trapOid":"1.3.6.1.4.1.8072.2.3.0.17","telemetry":[{"key":"heartbeat","oid":"1.3.6.1.4.1.8072.2.3.2.1"}]},
   {"trapOid":"1.3.6.1.6.3.1.1.5.1","telemetry":[{"key":"coldStartCount","oid":"1.3.6.1.4.1.99.1"}]}]}}`, devIP, port)
}

// startTraps runs a connector from js and waits for its receiver.
func startTraps(t *testing.T, js string) (*Connector, *sinktest.Recorder) {
	t.Helper()
	c := parse(t, js)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, testpeer.MinTimeout, "trap receiver up", func() bool { return s.Ups() == 1 })
	return c, s
}

// linkDown is a v2c linkDown notification's arguments after the target.
var linkDown = []string{"", "1.3.6.1.6.3.1.1.5.3",
	"1.3.6.1.2.1.2.2.1.1.3", "i", "3", "1.3.6.1.2.1.2.2.1.2.3", "s", "eth3", "1.3.6.1.2.1.31.1.1.1.18.3", "s", "uplink"}

func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

func wantValue(t *testing.T, s *sinktest.Recorder, device, key string, want protocols.Value) {
	t.Helper()
	s.Wait(t, testpeer.MinTimeout, device+" "+key, func() bool {
		_, ok := s.Latest(device, key)
		return ok
	})
	if got, _ := s.Latest(device, key); got != want {
		t.Errorf("%s %s = %+v, want %+v", device, key, got, want)
	}
}

func TestTrapsFromSnmptrap(t *testing.T) {
	port := testpeer.FreeUDPPort(t)
	_, s := startTraps(t, trapJSON(port, "127.0.0.1"))
	target := fmt.Sprintf("127.0.0.1:%d", port)

	t.Run("v2c trap to the polled device", func(t *testing.T) {
		run(t, testpeer.SnmpCommand(t, "snmptrap", append([]string{"-v", "2c", "-c", "public", target}, linkDown...)...))
		wantValue(t, s, "agent", "ifIndex", protocols.Int(3))
		wantValue(t, s, "agent", "ifDescr", protocols.String("eth3"))
		wantValue(t, s, "agent", "ifAlias", protocols.String("uplink"))
		wantValue(t, s, "agent", "lastTrap", protocols.String("1.3.6.1.6.3.1.1.5.3"))
		for _, p := range s.DataPushes() {
			if p.Profile != "router" || p.Report.IsSet() {
				t.Errorf("push %+v: want the polled device's profile and no strategy of its own", p)
			}
		}
	})
	t.Run("v1 trap", func(t *testing.T) {
		run(t, testpeer.SnmpCommand(t, "snmptrap", "-v", "1", "-c", "public", target,
			"1.3.6.1.4.1.8072.2.3", "127.0.0.1", "6", "17", "", "1.3.6.1.4.1.8072.2.3.2.1", "i", "42"))
		wantValue(t, s, "agent", "heartbeat", protocols.Int(42))
	})
	t.Run("v3 authPriv trap", func(t *testing.T) {
		run(t, testpeer.SnmpCommand(t, "snmptrap", "-v", "3", "-u", "trapper", "-l", "authPriv",
			"-a", "SHA", "-A", "auth-pass-1", "-x", "AES", "-X", "priv-pass-1", "-e", "0x8000000001020304", target,
			"", "1.3.6.1.6.3.1.1.5.1", "1.3.6.1.4.1.99.1", "u", "7"))
		wantValue(t, s, "agent", "coldStartCount", protocols.Uint(7))
	})
	t.Run("v3 authPriv inform", func(t *testing.T) {
		// snmpinform discovers the receiver's engineId, then sends.
		run(t, testpeer.SnmpCommand(t, "snmpinform", "-v", "3", "-u", "trapper", "-l", "authPriv",
			"-a", "SHA", "-A", "auth-pass-1", "-x", "AES", "-X", "priv-pass-1", "-t", "10", "-r", "0", target,
			"", "1.3.6.1.6.3.1.1.5.1", "1.3.6.1.4.1.99.1", "u", "9"))
		wantValue(t, s, "agent", "coldStartCount", protocols.Uint(9))
	})
	t.Run("v2c inform acknowledged after the commit", func(t *testing.T) {
		s.Hold()
		before := s.Pushed()
		// Tries a second apart: unanswered while held (each waits out the
		// receiver's bound), answered on the first try after the commit.
		cmd := testpeer.SnmpCommand(t, "snmpinform", append([]string{"-v", "2c", "-c", "public", "-t", "1", "-r", "20", target},
			strings.Replace(strings.Join(linkDown, "\x00"), "eth3", "eth4", 1))...)
		cmd.Args = append(cmd.Args[:len(cmd.Args)-1], strings.Split(cmd.Args[len(cmd.Args)-1], "\x00")...)
		exited := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { exited <- cmd.Wait() }()
		s.Wait(t, testpeer.MinTimeout, "the inform's push", func() bool { return s.Pushed() > before })
		// The receiver waits for the commit before it answers, so the
		// sender cannot have its answer yet.
		select {
		case err := <-exited:
			t.Fatalf("snmpinform ended before the commit: %v", err)
		default:
		}
		s.Release()
		if err := <-exited; err != nil {
			t.Fatalf("snmpinform after the commit: %v", err)
		}
		wantValue(t, s, "agent", "ifDescr", protocols.String("eth4"))
	})
	t.Run("inform whose commit fails is not acknowledged", func(t *testing.T) {
		s.Hold()
		before := s.Pushed()
		cmd := testpeer.SnmpCommand(t, "snmpinform", append([]string{"-v", "2c", "-c", "public", "-t", "5", "-r", "0", target}, linkDown...)...)
		exited := make(chan []byte, 1)
		go func() { out, _ := cmd.CombinedOutput(); exited <- out }()
		s.Wait(t, testpeer.MinTimeout, "the inform's push", func() bool { return s.Pushed() > before })
		s.ReleaseWith(errors.New("journal failed"))
		if out := <-exited; !strings.Contains(string(out), "Timeout") {
			t.Fatalf("snmpinform: %s; want a timeout (no answer)", out)
		}
	})
	t.Run("inform waiting for its commit holds the receiver only briefly", func(t *testing.T) {
		s.Hold()
		before := s.Pushed()
		// One try, no answer expected while held; the trap after it must
		// be received within the bound, not after the commit.
		inform := testpeer.SnmpCommand(t, "snmpinform", append([]string{"-v", "2c", "-c", "public", "-t", "30", "-r", "0", target}, linkDown...)...)
		if err := inform.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = inform.Process.Kill(); _ = inform.Wait() })
		s.Wait(t, testpeer.MinTimeout, "the inform's push", func() bool { return s.Pushed() == before+1 })
		run(t, testpeer.SnmpCommand(t, "snmptrap", "-v", "2c", "-c", "public", target, "", "1.3.6.1.4.1.8072.2.3.0.17",
			"1.3.6.1.4.1.8072.2.3.2.1", "i", "43"))
		s.Wait(t, testpeer.MinTimeout, "the trap's push while the inform is uncommitted", func() bool { return s.Pushed() == before+2 })
		s.Release()
	})
	t.Run("inform not accepted is not acknowledged", func(t *testing.T) {
		s.FailNext(errors.New("connector stopping"))
		cmd := testpeer.SnmpCommand(t, "snmpinform", append([]string{"-v", "2c", "-c", "public", "-t", "1", "-r", "0", target}, linkDown...)...)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Timeout") {
			t.Fatalf("snmpinform = %v, %s; want a timeout", err, out)
		}
	})
	t.Run("bad community and bad v3 key are counted, not pushed", func(t *testing.T) {
		before, bad := s.Pushed(), len(s.MalformedReports())
		run(t, testpeer.SnmpCommand(t, "snmptrap", append([]string{"-v", "2c", "-c", "wrong", target}, linkDown...)...))
		run(t, testpeer.SnmpCommand(t, "snmptrap", "-v", "3", "-u", "trapper", "-l", "authPriv",
			"-a", "SHA", "-A", "wrong-pass-1", "-x", "AES", "-X", "priv-pass-1", "-e", "0x8000000001020304", target,
			"", "1.3.6.1.6.3.1.1.5.1", "1.3.6.1.4.1.99.1", "u", "8"))
		// The configured user without authentication, and a user with none
		// and no name (the engine-discovery entry must not let it in).
		run(t, testpeer.SnmpCommand(t, "snmptrap", "-v", "3", "-u", "trapper", "-l", "noAuthNoPriv", "-e", "0x8000000001020304", target,
			"", "1.3.6.1.6.3.1.1.5.1", "1.3.6.1.4.1.99.1", "u", "8"))
		// (snmptrap and gosnmp's client refuse an empty user name, so the
		// datagram is built here.)
		pkt := &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: gosnmp.NoAuthNoPriv, SecurityModel: gosnmp.UserSecurityModel,
			SecurityParameters: &gosnmp.UsmSecurityParameters{AuthoritativeEngineID: "\x80\x00\x00\x00\x01\x02\x03\x04", AuthoritativeEngineBoots: 1},
			MsgID:              1, RequestID: 1, PDUType: gosnmp.SNMPv2Trap, Variables: []gosnmp.SnmpPDU{
				{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(1)},
				{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.6.3.1.1.5.1"},
				{Name: ".1.3.6.1.4.1.99.1", Type: gosnmp.Gauge32, Value: uint(8)}}}
		b, err := pkt.MarshalMsg()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("udp", target)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		s.Wait(t, testpeer.MinTimeout, "four malformed reports", func() bool { return len(s.MalformedReports()) >= bad+4 })
		r := s.MalformedReports()
		if !errors.Is(r[bad].Err, ErrCommunity) {
			t.Errorf("first report %v, want ErrCommunity", r[bad])
		}
		for _, m := range r[bad:] {
			if strings.Contains(m.String(), "wrong") {
				t.Errorf("report %q shows a secret", m)
			}
		}
		if s.Pushed() != before {
			t.Errorf("pushed %d, want %d", s.Pushed(), before)
		}
	})
	t.Run("unmapped trap is counted", func(t *testing.T) {
		n := s.UnmatchedCount()
		run(t, testpeer.SnmpCommand(t, "snmptrap", "-v", "2c", "-c", "public", target, "", "1.3.6.1.4.1.99.0.1"))
		s.Wait(t, testpeer.MinTimeout, "unmatched", func() bool { return s.UnmatchedCount() == n+1 })
	})
}

func TestTrapsFromUnknownSourceGoToTheFallbackDevice(t *testing.T) {
	port := testpeer.FreeUDPPort(t)
	_, s := startTraps(t, trapJSON(port, "192.0.2.1"))
	run(t, testpeer.SnmpCommand(t, "snmptrap", append([]string{"-v", "2c", "-c", "public", fmt.Sprintf("127.0.0.1:%d", port)}, linkDown...)...))
	wantValue(t, s, "trap sink", "ifIndex", protocols.Int(3))
	p := s.DataPushes()[0]
	if p.Profile != "traps" || p.KeyReport["ifIndex"].Type != protocols.OnReceived {
		t.Errorf("push profile %q key strategies %v", p.Profile, p.KeyReport)
	}
}

// BenchmarkInforms sends v2c informs from a gosnmp client, one at a time,
// through the receiver's UDP socket to a sink that commits at once: each
// is answered only after its push is done, so this is the inform round
// trip the receiver sustains.
func BenchmarkInforms(b *testing.B) {
	port := testpeer.FreeUDPPort(b)
	ps := &spec.Problems{}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "snmp", Type: "snmp", Config: spec.Parse(ps, "snmp.json", []byte(trapJSON(port, "127.0.0.1")))})
	if err != nil {
		b.Fatal(err)
	}
	s := sinktest.NewCounter()
	sinktest.Run(b, c, s)
	s.Wait(b, testpeer.MinTimeout, "trap receiver up", func() bool { return s.Ups() == 1 })
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(port), Version: gosnmp.Version2c, Community: "public", Timeout: 5 * time.Second}
	if err := g.Connect(); err != nil {
		b.Fatal(err)
	}
	defer g.Conn.Close()
	trap := gosnmp.SnmpTrap{IsInform: true, Variables: []gosnmp.SnmpPDU{
		{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(1)},
		{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.6.3.1.1.5.3"},
		{Name: ".1.3.6.1.2.1.2.2.1.1.3", Type: gosnmp.Integer, Value: 3},
		{Name: ".1.3.6.1.2.1.2.2.1.2.3", Type: gosnmp.OctetString, Value: []byte("eth3")}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.SendTrap(trap); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.PushedValues())/b.Elapsed().Seconds(), "values/s")
}

// TestTrapPortBusy: a port that cannot be had is reported as a link down
// and bound as soon as it is free.
func TestTrapPortBusy(t *testing.T) {
	hold, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := hold.LocalAddr().(*net.UDPAddr).Port
	c := parse(t, trapJSON(port, "127.0.0.1"))
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, testpeer.MinTimeout, "link down", func() bool { return len(s.Links()) > 0 })
	if l := s.Links()[0]; l.Up || l.Err == nil || !strings.Contains(l.Err.Error(), "listen on udp 127.0.0.1:") {
		t.Fatalf("first link event %+v, want down with the listen error", l)
	}
	hold.Close()
	s.Wait(t, testpeer.MinTimeout, "link up", func() bool { return s.Ups() == 1 })
	if c.TrapAddr() != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("TrapAddr %q", c.TrapAddr())
	}
}
