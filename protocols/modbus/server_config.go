package modbus

import (
	"encoding/json"
	"net"
	"sort"
	"strconv"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// ServerConfig is the file's `slave` section: the gateway serves a Modbus
// slave, over TCP or RTU on a serial line, whose registers start with the
// configured `values`, and (as upstream) reports them through a device that
// polls this server like any other slave (over loopback TCP; in process on
// a serial line, which belongs to the masters on it). Writes from other
// Modbus masters therefore show up in that device's telemetry and
// attributes on its next poll; the device's shared attributes and RPCs
// write the server's registers.
type ServerConfig struct {
	Path string
	// Listen is the host:port the TCP server binds, or the serial device.
	Listen string
	// Slave is the device that polls the server (its host is loopback when
	// the server binds every interface).
	Slave  *SlaveConfig
	Values []ServerValue
}

// ServerValue is one configured initial value, encoded for its table.
type ServerValue struct {
	Table int // read function code of the table: 1 coils, 2 discrete inputs, 3 holding, 4 input registers
	Key   *KeyConfig
	Regs  []uint16 // for tables 3 and 4
	Bits  []bool   // for tables 1 and 2
}

// serverTables maps upstream's `values` section names to the read function
// code of the table they fill.
var serverTables = map[string]int{
	"coils_initializer": 1,
	"discrete_inputs":   2,
	"holding_registers": 3,
	"input_registers":   4,
}

// parseServer reads the `slave` section. It returns nil when the section is
// absent or, as upstream, when sendDataToThingsBoard is not true.
func parseServer(root *spec.Obj, inherited protocols.ReportStrategy) *ServerConfig {
	so := root.Obj("slave")
	if so == nil {
		return nil
	}
	raw := so.Raw()
	if !so.Bool("sendDataToThingsBoard", false) {
		// Upstream starts the server only together with its reporting.
		so.Warnf("sendDataToThingsBoard", "is not true: the Modbus server is not started (as upstream)")
		return nil
	}
	typ := so.Enum("type", "tcp", "tcp", "udp", "serial", "tls")
	if typ != "tcp" && typ != "serial" {
		so.Errorf("type", "%q is not supported for the server yet (want tcp or serial)", typ)
	}
	// Upstream's defaults for the reporting device.
	for k, v := range map[string]any{"deviceName": "Modbus Slave", "pollPeriod": float64(5000), "host": "0.0.0.0"} {
		if _, ok := raw[k]; !ok {
			raw[k] = v
		}
	}
	so.Known("identity", "values", "sendDataToThingsBoard", "security")
	s := parseSlave(so, inherited)
	sc := &ServerConfig{Path: so.Path(), Slave: s, Listen: net.JoinHostPort(s.Host, strconv.Itoa(s.Port))}
	if s.Type == "serial" {
		// unitId 0 (upstream's default) answers every unit, as upstream's
		// single-context server; 1-247 answer that unit only.
		sc.Listen = s.Device
		if s.UnitID > 247 {
			so.Errorf("unitId", "%d is not a serial slave address (want 1-247, or 0 for every unit)", s.UnitID)
		}
	} else if ip := net.ParseIP(s.Host); s.Host == "" || (ip != nil && ip.IsUnspecified()) {
		s.Host = "127.0.0.1"
	}

	vo := so.Obj("values")
	if vo == nil {
		so.Warnf("values", "no values: the server starts with every register 0")
		return sc
	}
	tables := make([]string, 0, len(vo.Raw()))
	for name := range vo.Raw() {
		tables = append(tables, name)
	}
	sort.Strings(tables)
	for _, name := range tables {
		table, ok := serverTables[name]
		if !ok {
			vo.Errorf(name, "unknown table (want coils_initializer, discrete_inputs, holding_registers or input_registers)")
			continue
		}
		to := vo.Obj(name)
		if to == nil {
			continue
		}
		for _, section := range []string{"attributes", "timeseries", "attributeUpdates", "rpc"} {
			kind := readKey
			switch section {
			case "attributeUpdates":
				kind = writeKey
			case "rpc":
				kind = rpcKey
			}
			for _, ko := range to.List(section) {
				mark := ko.Problems().Mark()
				ko.Known("value")
				if kind == readKey {
					// Upstream reads these with the table's read code,
					// whatever the entry says.
					ko.Raw()["functionCode"] = float64(table)
				}
				k := parseKey(ko, kind, s)
				v := serverValue(ko, table, k)
				if k == nil || ko.Problems().SkipSince(mark) {
					continue
				}
				if v != nil {
					sc.Values = append(sc.Values, *v)
				}
				switch section {
				case "attributes":
					s.Attributes = append(s.Attributes, k)
				case "timeseries":
					s.Timeseries = append(s.Timeseries, k)
				case "attributeUpdates":
					s.AttributeUpdates = append(s.AttributeUpdates, k)
				default:
					s.RPC = append(s.RPC, k)
				}
			}
			to.Known(section)
		}
		to.Done()
	}
	vo.Done()
	return sc
}

// serverValue encodes the entry's initial `value` for its table; nil when
// the entry has none.
func serverValue(ko *spec.Obj, table int, k *KeyConfig) *ServerValue {
	rawValue, ok := ko.Raw()["value"]
	if !ok || k == nil {
		return nil
	}
	j, err := json.Marshal(rawValue)
	if err != nil {
		ko.Errorf("value", "%s", err)
		return nil
	}
	v, err := valueFromJSON(j)
	if err == nil {
		v, err = coerce(&k.Codec, v)
	}
	out := &ServerValue{Table: table, Key: k}
	if err == nil {
		if table <= 2 {
			out.Bits, err = k.EncodeBits(v)
		} else {
			out.Regs, err = k.EncodeRegisters(v)
		}
	}
	if err != nil {
		ko.Errorf("value", "%s", err)
		return nil
	}
	if n := max(len(out.Regs), len(out.Bits)); int(k.Address)+n > 65536 {
		ko.Errorf("value", "%d objects from address %d run past 65535", n, k.Address)
		return nil
	}
	return out
}
