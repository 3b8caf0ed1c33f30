package snmp

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
)

func TestConvertShapes(t *testing.T) {
	s := func(oid, v string) gosnmp.SnmpPDU {
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.OctetString, Value: []byte(v)}
	}
	tt := gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(42)}
	for _, tc := range []struct {
		method string
		pdus   []gosnmp.SnmpPDU
		want   string
	}{
		{"get", []gosnmp.SnmpPDU{s(".1.1", "hi")}, `"hi"`},
		{"get", []gosnmp.SnmpPDU{tt}, `42`},
		{"get", []gosnmp.SnmpPDU{{Name: ".1", Type: gosnmp.OctetString, Value: []byte{0, 0x1b, 0xff}}}, `"001bff"`},
		{"multiget", []gosnmp.SnmpPDU{s(".1.1", "a"), tt}, `"a,42"`},
		{"walk", []gosnmp.SnmpPDU{s(".1.1", "a"), tt}, `{"1.1":"a","1.3.6.1.2.1.1.3.0":"42"}`},
		{"table", []gosnmp.SnmpPDU{s(".1.2.1.2.1", "x"), s(".1.2.1.3.1", "y"), s(".1.2.1.2.2", "z")}, `{"1":{"2":"x","3":"y"},"2":{"2":"z"}}`},
	} {
		v, err := Convert(tc.method, ".1.2", tc.pdus)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if got := string(v.AppendJSON(nil)); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.method, got, tc.want)
		}
	}
	if _, err := Convert("get", "", []gosnmp.SnmpPDU{{Name: ".1", Type: gosnmp.NoSuchObject}}); protocols.ErrorKind(err) != protocols.KindException {
		t.Errorf("noSuchObject: %v", err)
	}
}

func FuzzConvert(f *testing.F) {
	f.Add("walk", ".1.3.6", []byte("abc"), int64(5), uint8(gosnmp.OctetString))
	f.Add("table", ".1.3", []byte{0xff}, int64(-1), uint8(gosnmp.Integer))
	f.Fuzz(func(t *testing.T, method, name string, b []byte, i int64, typ uint8) {
		var val any
		switch gosnmp.Asn1BER(typ) {
		case gosnmp.Integer:
			val = int(i)
		case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks:
			val = uint32(i)
		case gosnmp.Counter64:
			val = uint64(i)
		case gosnmp.ObjectIdentifier, gosnmp.IPAddress:
			val = string(b)
		default:
			val = b
		}
		pdus := []gosnmp.SnmpPDU{{Name: name, Type: gosnmp.Asn1BER(typ), Value: val}, {Name: name + ".1", Type: gosnmp.OctetString, Value: b}}
		v, err := Convert(method, ".1.3", pdus)
		if err == nil && !json.Valid(v.AppendJSON(nil)) {
			t.Fatalf("invalid JSON %q", v.AppendJSON(nil))
		}
	})
}

func FuzzReservedParams(f *testing.F) {
	f.Add("oid=1.3.6.1.2.1.1.5.0;value=x;")
	f.Fuzz(func(t *testing.T, s string) {
		kv, err := ReservedParams(s)
		if err == nil {
			if _, err := normOID(kv["oid"]); err == nil && kv["oid"] == "" {
				t.Fatal("empty OID accepted")
			}
		}
	})
}

func BenchmarkConvertWalk(b *testing.B) {
	pdus := make([]gosnmp.SnmpPDU, 20)
	for i := range pdus {
		pdus[i] = gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.2.2.1.10." + string(rune('1'+i%9)), Type: gosnmp.Counter32, Value: uint(i * 1000)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Convert("walk", ".1.3.6.1.2.1.2.2", pdus); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(pdus))/b.Elapsed().Seconds(), "values/s")
}

func BenchmarkConvertGet(b *testing.B) {
	pdus := []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(42)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Convert("get", "", pdus); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// FuzzTrap feeds arbitrary datagrams through what the trap receiver does
// with one: decode, trap OID, varbinds to values. Nothing may panic, and
// every value made must encode as JSON.
func FuzzTrap(f *testing.F) {
	for _, c := range []string{"traps_v2c", "traps_v1"} {
		raw, err := os.ReadFile(filepath.Join("testdata", c, "trap.hex"))
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Every varbind under 1 or 0 matches, whatever its type.
	mapping := []*TrapMapping{{TrapKey: "trap", Telemetry: []*TrapKey{{Key: "a", OID: ".1"}, {Key: "z", OID: ".0"}},
		Attributes: []*TrapKey{{Key: "b", OID: ".1.3.6.1.2.1"}}}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodeTrap(raw)
		if err != nil {
			return
		}
		r, _, _ := TrapReading(mapping, TrapOID(p), p.Variables)
		for _, dp := range append(r.Telemetry, r.Attributes...) {
			if b := dp.Value.AppendJSON(nil); !json.Valid(b) {
				t.Fatalf("%s: invalid JSON %q", dp.Key, b)
			}
		}
	})
}

func TestTrapOID(t *testing.T) {
	for _, tc := range []struct {
		p    gosnmp.SnmpPacket
		want string
	}{
		{gosnmp.SnmpPacket{PDUType: gosnmp.Trap, SnmpTrap: gosnmp.SnmpTrap{GenericTrap: 2}}, ".1.3.6.1.6.3.1.1.5.3"},
		{gosnmp.SnmpPacket{PDUType: gosnmp.Trap, SnmpTrap: gosnmp.SnmpTrap{GenericTrap: 6, SpecificTrap: 5, Enterprise: "1.3.6.1.4.1.9"}}, ".1.3.6.1.4.1.9.0.5"},
		{gosnmp.SnmpPacket{PDUType: gosnmp.SNMPv2Trap, Variables: []gosnmp.SnmpPDU{{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.4.1.9.9.1"}}}, ".1.3.6.1.4.1.9.9.1"},
		{gosnmp.SnmpPacket{PDUType: gosnmp.InformRequest}, ""},
	} {
		if got := TrapOID(&tc.p); got != tc.want {
			t.Errorf("TrapOID(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
	// An instance matches the column; a longer sibling number does not.
	if !under(".1.3.6.1.2.1.2.2.1.1.3", ".1.3.6.1.2.1.2.2.1.1") || under(".1.3.6.1.2.1.2.2.1.10", ".1.3.6.1.2.1.2.2.1.1") {
		t.Error("under")
	}
}

// BenchmarkTrapConvert is the receiver's work per datagram: decode the
// golden v2c linkDown, find its trap OID, convert its mapped varbinds.
func BenchmarkTrapConvert(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "traps_v2c", "trap.hex"))
	if err != nil {
		b.Fatal(err)
	}
	pkt, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		b.Fatal(err)
	}
	mapping := []*TrapMapping{{TrapOID: ".1.3.6.1.6.3.1.1.5.3", TrapKey: "lastTrap", Telemetry: []*TrapKey{
		{Key: "ifIndex", OID: ".1.3.6.1.2.1.2.2.1.1"}, {Key: "ifDescr", OID: ".1.3.6.1.2.1.2.2.1.2"},
		{Key: "ifInOctets", OID: ".1.3.6.1.2.1.2.2.1.10"}}}}
	values := 0
	b.ReportAllocs()
	for b.Loop() {
		p, err := DecodeTrap(pkt)
		if err != nil {
			b.Fatal(err)
		}
		r, _, _ := TrapReading(mapping, TrapOID(p), p.Variables)
		values += len(r.Telemetry)
	}
	b.ReportMetric(float64(values)/b.Elapsed().Seconds(), "values/s")
}
