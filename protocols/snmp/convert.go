package snmp

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
)

// ErrAgent is an error the agent answered with: an error-status in the
// response PDU or a varbind exception (noSuchObject, noSuchInstance,
// endOfMibView). It matches protocols.ErrException.
var ErrAgent = fmt.Errorf("snmp agent error: %w", protocols.ErrException)

// Value converts one varbind as upstream's default converter does for a
// single value: strings stay strings (OCTET STRING decoded as UTF-8),
// numbers stay numbers. An OCTET STRING that is not UTF-8 (a MAC address)
// becomes hex, where upstream's decode raised and dropped the key.
func Value(pdu gosnmp.SnmpPDU) (protocols.Value, error) {
	switch pdu.Type {
	case gosnmp.OctetString, gosnmp.BitString:
		b, _ := pdu.Value.([]byte)
		return protocols.String(octets(b)), nil
	case gosnmp.Integer:
		i, _ := pdu.Value.(int)
		return protocols.Int(int64(i)), nil
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		switch t := pdu.Value.(type) {
		case uint:
			return protocols.Uint(uint64(t)), nil
		case uint32:
			return protocols.Uint(uint64(t)), nil
		}
		return protocols.Uint(gosnmp.ToBigInt(pdu.Value).Uint64()), nil
	case gosnmp.Counter64:
		u, _ := pdu.Value.(uint64)
		return protocols.Uint(u), nil
	case gosnmp.OpaqueFloat:
		f, _ := pdu.Value.(float32)
		return protocols.Float(float64(f)), nil
	case gosnmp.OpaqueDouble:
		f, _ := pdu.Value.(float64)
		return protocols.Float(f), nil
	case gosnmp.Boolean:
		b, _ := pdu.Value.(bool)
		return protocols.Bool(b), nil
	case gosnmp.ObjectIdentifier, gosnmp.IPAddress:
		s, _ := pdu.Value.(string)
		return protocols.String(strings.TrimPrefix(s, ".")), nil
	case gosnmp.Opaque:
		b, _ := pdu.Value.([]byte)
		return protocols.String(hex.EncodeToString(b)), nil
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView, gosnmp.Null, gosnmp.UnknownType:
		return protocols.Value{}, fmt.Errorf("%w: %s %s", ErrAgent, oidText(pdu.Name), pdu.Type)
	}
	return protocols.Value{}, fmt.Errorf("%w: %s: unsupported type %s", ErrAgent, oidText(pdu.Name), pdu.Type)
}

func octets(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return hex.EncodeToString(b)
}

// Text is a varbind's value as upstream's str(): the form values take
// inside the objects walks and tables produce.
func Text(v protocols.Value) string {
	switch v.Kind {
	case protocols.KindString, protocols.KindJSON:
		return v.S
	case protocols.KindInt:
		return strconv.FormatInt(v.I, 10)
	case protocols.KindUint:
		return strconv.FormatUint(v.U, 10)
	case protocols.KindFloat:
		return strconv.FormatFloat(v.F, 'g', -1, 64)
	case protocols.KindBool:
		if v.I != 0 {
			return "True"
		}
		return "False"
	}
	return ""
}

func oidText(s string) string { return strings.TrimPrefix(s, ".") }

// Convert builds the key's value from the varbinds its method returned,
// the shapes upstream's default converter gives:
//   - get: the value itself;
//   - multiget: the values' text joined with ",";
//   - getnext, walk, multiwalk, bulkwalk, bulkget: a JSON object
//     {oid: text};
//   - table, bulktable: a JSON object {row index: {column: text}} (upstream
//     merged the rows into one object, so only the last row survived).
//
// Varbinds the agent marked as exceptions are left out of objects; for get
// and multiget they fail the key.
func Convert(method, base string, pdus []gosnmp.SnmpPDU) (protocols.Value, error) {
	switch method {
	case "get":
		if len(pdus) != 1 {
			return protocols.Value{}, fmt.Errorf("%w: expected 1 varbind, got %d", ErrAgent, len(pdus))
		}
		return Value(pdus[0])
	case "multiget":
		var sb strings.Builder
		for i, p := range pdus {
			v, err := Value(p)
			if err != nil {
				return protocols.Value{}, err
			}
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(Text(v))
		}
		return protocols.String(sb.String()), nil
	case "table", "bulktable":
		return table(base, pdus)
	}
	var errs []error
	buf := make([]byte, 0, 32*len(pdus)+2)
	buf = append(buf, '{')
	n := 0
	for _, p := range pdus {
		v, err := Value(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendJSONString(buf, oidText(p.Name))
		buf = append(buf, ':')
		buf = appendJSONString(buf, Text(v))
	}
	buf = append(buf, '}')
	if n == 0 && len(errs) > 0 {
		return protocols.Value{}, errors.Join(errs...)
	}
	return protocols.JSON(buf)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// table groups column.index varbinds under base into rows.
func table(base string, pdus []gosnmp.SnmpPDU) (protocols.Value, error) {
	base = strings.TrimSuffix(base, ".") + "."
	rows := map[string]map[string]string{}
	for _, p := range pdus {
		v, err := Value(p)
		if err != nil {
			continue
		}
		rest := strings.TrimPrefix(p.Name, base)
		if rest == p.Name {
			continue
		}
		// rest is entry.column.index...: the entry (usually 1) is dropped.
		parts := strings.SplitN(rest, ".", 3)
		var col, idx string
		switch len(parts) {
		case 3:
			col, idx = parts[1], parts[2]
		case 2:
			col, idx = parts[0], parts[1]
		default:
			continue
		}
		r := rows[idx]
		if r == nil {
			r = map[string]string{}
			rows[idx] = r
		}
		r[col] = Text(v)
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return protocols.Value{}, err
	}
	return protocols.JSON(b)
}

// pduFor builds the varbind a set sends: JSON strings as OCTET STRING,
// integers as INTEGER (or Gauge32 beyond int32, as upstream's library
// typed Python ints), booleans as INTEGER 1/0, other numbers as their text.
func pduFor(oid string, raw json.RawMessage) (gosnmp.SnmpPDU, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return gosnmp.SnmpPDU{}, fmt.Errorf("value %s is not JSON: %w", raw, err)
	}
	switch t := v.(type) {
	case string:
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.OctetString, Value: []byte(t)}, nil
	case bool:
		i := 0
		if t {
			i = 1
		}
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.Integer, Value: i}, nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			if i >= -1<<31 && i < 1<<31 {
				return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.Integer, Value: int(i)}, nil
			}
			if i >= 0 && i < 1<<32 {
				return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.Gauge32, Value: uint(i)}, nil
			}
		}
		if bi, ok := new(big.Int).SetString(t.String(), 10); ok && bi.Sign() >= 0 && bi.IsUint64() {
			return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.Counter64, Value: bi.Uint64()}, nil
		}
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.OctetString, Value: []byte(t.String())}, nil
	}
	return gosnmp.SnmpPDU{}, fmt.Errorf("value %s cannot be set (want a string, number or boolean)", raw)
}

// OIDs a v2c/v3 notification carries first (RFC 3416 4.2.6), and the
// prefix of the generic v1 traps' translations (RFC 3584 3.1).
const (
	oidSysUpTime    = ".1.3.6.1.2.1.1.3.0"
	oidSnmpTrapOID  = ".1.3.6.1.6.3.1.1.4.1.0"
	oidGenericTraps = ".1.3.6.1.6.3.1.1.5."
)

// TrapOID is the notification's trap OID: snmpTrapOID.0 of a v2c/v3
// notification, or a v1 trap translated as RFC 3584 says (generic traps
// 0-5 as snmpTraps.1-6, enterprise-specific ones as enterprise.0.specific).
// "" when a v2c/v3 notification lacks it.
func TrapOID(p *gosnmp.SnmpPacket) string {
	if p.PDUType == gosnmp.Trap {
		t := p.SnmpTrap
		if t.GenericTrap >= 0 && t.GenericTrap < 6 {
			return oidGenericTraps + strconv.Itoa(t.GenericTrap+1)
		}
		ent := "." + strings.TrimPrefix(t.Enterprise, ".")
		return ent + ".0." + strconv.Itoa(t.SpecificTrap)
	}
	for _, v := range p.Variables {
		if v.Name == oidSnmpTrapOID {
			s, _ := v.Value.(string)
			return "." + strings.TrimPrefix(s, ".")
		}
	}
	return ""
}

// under reports whether the varbind name is oid or an instance below it.
func under(name, oid string) bool {
	return name == oid || len(name) > len(oid) && strings.HasPrefix(name, oid) && name[len(oid)] == '.'
}

// TrapReading converts a notification whose trap OID is trapOID with the
// mapping entries that apply to it (every entry without trapOid, and
// those naming it): each key takes the first varbind at or under its OID,
// converted as a get's value. A varbind that cannot be converted (an
// exception, an unknown type) costs its key only and is returned among
// the errors; a key with no varbind is left out. matched is false when
// no entry applies.
func TrapReading(mapping []*TrapMapping, trapOID string, vars []gosnmp.SnmpPDU) (r protocols.Reading, matched bool, errs []error) {
	for _, m := range mapping {
		if m.TrapOID != "" && m.TrapOID != trapOID {
			continue
		}
		matched = true
		if m.TrapKey != "" && trapOID != "" {
			r.Telemetry = append(r.Telemetry, protocols.Datapoint{Key: m.TrapKey, Value: protocols.String(oidText(trapOID))})
		}
		for _, sec := range []struct {
			keys []*TrapKey
			dst  *[]protocols.Datapoint
		}{{m.Attributes, &r.Attributes}, {m.Telemetry, &r.Telemetry}} {
			for _, k := range sec.keys {
				for _, v := range vars {
					if !under(v.Name, k.OID) {
						continue
					}
					val, err := Value(v)
					if err != nil {
						errs = append(errs, fmt.Errorf("key %q: %w", k.Key, err))
					} else {
						*sec.dst = append(*sec.dst, protocols.Datapoint{Key: k.Key, Value: val})
					}
					break
				}
			}
		}
	}
	return r, matched, errs
}

// DecodeTrap decodes a v1 or v2c notification as the receiver's listener
// does (v3 ones need the users' keys, which only the listener holds). It
// never panics on arbitrary input.
func DecodeTrap(raw []byte) (*gosnmp.SnmpPacket, error) {
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
	p, err := g.UnmarshalTrap(raw, false)
	if err != nil {
		return nil, fmt.Errorf("snmp trap: %w", err)
	}
	return p, nil
}
