package can

import (
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/spec"
)

func TestSampleLoads(t *testing.T) {
	cfg, warns, err := Load("can.json", Sample)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if cfg.Interface != "virtual" || cfg.Channel != "vcan0" || cfg.ReconnectPeriod != 5*time.Second || cfg.Backend["fd"] != false {
		t.Errorf("top level: %+v", cfg)
	}
	d := cfg.Devices[0]
	if d.Name != "Car" || !d.StrictEval || len(d.Attributes) != 1 || len(d.Timeseries) != 4 || len(d.AttributeUpdates) != 1 || len(d.RPC) != 3 {
		t.Fatalf("device: %+v", d)
	}
	sn := d.Attributes[0]
	if sn.Polling == nil || !sn.Polling.Once || sn.Polling.Period != DefaultPollPeriod {
		t.Errorf("polling once: %+v", sn.Polling)
	}
	rpm := d.Timeseries[0]
	pf := rpm.PollFrame()
	if pf == nil || pf.ID != 418119424 || !pf.Extended || pf.FD || string(pf.Data) != "\xaa\xaa\xbb\xbb\xaa\xaa\xbb\xbb" || rpm.Polling.Once || rpm.Polling.Period != 5*time.Second {
		t.Errorf("poll frame: %v %+v", pf, rpm.Polling)
	}
	if !rpm.Telemetry || rpm.Command == nil || rpm.Command.Value != 48059 || rpm.Expression == nil {
		t.Errorf("rpm: %+v", rpm)
	}
	f, err := d.AttributeUpdates[0].Frame(map[string]any{"value": 513})
	if err != nil || f.ID != 305 || string(f.Data) != "\x00\x01\x02\xff" {
		t.Errorf("attribute update frame: %v %v", f, err)
	}
}

func TestBrokenConfigs(t *testing.T) {
	cases := []struct {
		name, js string
		want     []string
	}{
		{"syntax", `{"channel": }`, []string{`can.json: invalid JSON: line 1 column 13: invalid character '}' looking for beginning of value`}},
		{"top level", `{"interface":"pcan","reconnectPeriod":-1}`, []string{
			`can.json: interface: unknown value "pcan" (want one of: socketcan, virtual, slcan)`,
			`can.json: channel: is required`,
			`can.json: reconnectPeriod: -1 must be a positive number of seconds`,
			`can.json: devices: is required`,
		}},
		{"value type", `{"channel":"c","devices":[{"name":"d","timeseries":[{"key":"a","nodeId":1,"value":"0:1:int"},{"key":"b","nodeId":1,"value":"0:2:big:int7"}]}]}`, []string{
			`error (entry skipped): can.json: devices[0].timeseries[1].value: unknown type "int7" (want one of: bool, boolean, int, long, float, double, string, raw)`,
		}},
		{"value forms", `{"channel":"c","devices":[{"name":"d","attributes":[
			{"key":"a","nodeId":1,"value":"0:int"},
			{"key":"b","nodeId":1,"value":"0:0:int"},
			{"key":"c","nodeId":1,"value":"0:2:middle:int"},
			{"key":"d","nodeId":1,"value":"0:2:int:maybe"},
			{"key":"e","nodeId":1,"value":"0:-1:string:ebcdic"},
			{"key":"f","nodeId":1,"value":"6:4:int"},
			{"key":"g","nodeId":1,"value":{"start":0,"type":"long","byteorder":"middle"}},
			{"key":"h","nodeId":1,"value":12},
			{"key":"i","nodeId":1},
			{"key":"j","nodeId":1,"value":"6:1:float"},
			{"key":"k","nodeId":1,"isFd":true,"value":"60:4:little:float"}]}]}`, []string{
			`error (entry skipped): can.json: devices[0].attributes[0].value: "0:int" does not match start:length[:big|little]:type[:encoding]`,
			`error (entry skipped): can.json: devices[0].attributes[1].value: "0:0:int": length "0" is not a length (want -1 or 1..64)`,
			`error (entry skipped): can.json: devices[0].attributes[2].value: "0:2:middle:int": unknown byte order "middle" (want big or little)`,
			`error (entry skipped): can.json: devices[0].attributes[3].value: "0:2:int:maybe": "maybe" for int (want signed or unsigned)`,
			`error (entry skipped): can.json: devices[0].attributes[4].value: "0:-1:string:ebcdic": unknown encoding "ebcdic" (want one of: ascii, utf-8, latin-1)`,
			`error (entry skipped): can.json: devices[0].attributes[5].value: "6:4:int" reaches past the 8 bytes of a frame`,
			`error (entry skipped): can.json: devices[0].attributes[6].value.byteorder: unknown value "middle" (want one of: big, little)`,
			`error (entry skipped): can.json: devices[0].attributes[6].value.length: is required`,
			`error (entry skipped): can.json: devices[0].attributes[7].value: expected a string or an object, got 12`,
			`error (entry skipped): can.json: devices[0].attributes[8].value: is required`,
			`error (entry skipped): can.json: devices[0].attributes[9].value: "6:1:float" reaches past the 8 bytes of a frame`,
		}},
		{"ids and commands", `{"channel":"c","devices":[{"name":"d","timeseries":[
			{"key":"a","nodeId":4096,"value":"0:1:int"},
			{"key":"b","nodeId":"0x1ff","isExtendedId":true,"value":"0:1:int","command":"0:1:5"},
			{"key":"c","nodeId":"0x1ff","isExtendedId":true,"value":"0:1:int","command":"0:2:6"},
			{"key":"d","nodeId":7,"value":"0:1:int","command":"0:1:300"},
			{"key":"e","value":"0:1:int","command":"x"},
			{"key":"f","nodeId":8,"bitrateSwitch":true,"value":"0:1:int"}]}]}`, []string{
			`error (entry skipped): can.json: devices[0].timeseries[0].nodeId: 4096 is out of range for a standard id (want 0..2047, or set isExtendedId)`,
			`error (entry skipped): can.json: devices[0].timeseries[2].command: "0:2:6" has another layout than the command of nodeId 511 at devices[0].timeseries[1].command (one command layout per nodeId)`,
			`error (entry skipped): can.json: devices[0].timeseries[3].command: "0:1:300": value 300 does not fit in 1 byte(s)`,
			`error (entry skipped): can.json: devices[0].timeseries[4].nodeId: is required`,
			`error (entry skipped): can.json: devices[0].timeseries[4].command: "x" does not match start:length[:big|little]:value`,
			`error (entry skipped): can.json: devices[0].timeseries[5].bitrateSwitch: needs isFd`,
		}},
		{"polling and downlink", `{"channel":"c","devices":[{"name":"d","timeseries":[
			{"key":"a","nodeId":1,"value":"0:1:int","polling":{"type":"sometimes","period":"fast","dataInHex":"0102030405060708090a"}}],
			"attributeUpdates":[{"nodeId":2,"dataLength":9,"dataByteorder":"mixed","dataEncoding":"koi8","dataBefore":"xyz"}],
			"serverSideRpc":[{"method":"m","nodeId":3,"dataExpression":"value +"}]}]}`, []string{
			`error (entry skipped): can.json: devices[0].timeseries[0].polling.type: unknown value "sometimes" (want one of: always, once)`,
			`error (entry skipped): can.json: devices[0].timeseries[0].polling.period: "fast" is not a number of seconds`,
			`error (entry skipped): can.json: devices[0].timeseries[0].polling.dataInHex: 10 data bytes, a classic frame carries at most 8`,
			`error (entry skipped): can.json: devices[0].attributeUpdates[0].attributeOnThingsBoard: is required (the shared attribute this entry writes; upstream also reads "attribute")`,
			`error (entry skipped): can.json: devices[0].attributeUpdates[0].dataLength: 9 is out of range (want 1..8)`,
			`error (entry skipped): can.json: devices[0].attributeUpdates[0].dataByteorder: unknown value "mixed" (want one of: big, little)`,
			`error (entry skipped): can.json: devices[0].attributeUpdates[0].dataEncoding: unknown encoding "koi8" (want one of: ascii, utf-8, latin-1)`,
			`error (entry skipped): can.json: devices[0].attributeUpdates[0].dataBefore: "xyz" is not hex data: 'x' at position 0 is not a hex digit`,
			`error (entry skipped): can.json: devices[0].serverSideRpc[0].dataExpression: invalid expression "value +": column 8: got end of file, want primary expression`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs, err := Load("can.json", []byte(c.js))
			var lines []string
			if err != nil {
				lines = strings.Split(err.Error(), "\n")
			}
			for _, p := range probs {
				if p.Severity == spec.Skipped {
					lines = append(lines, p.String())
				}
			}
			if len(lines) == 0 {
				t.Fatal("no error")
			}
			if got, want := strings.Join(lines, "\n"), strings.Join(c.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestUnknownKeysAreWarnings(t *testing.T) {
	_, warns, err := Load("can.json", []byte(`{"channel":"c","reconectPeriod":3,"devices":[{"name":"d","timeseries":[{"key":"a","nodeId":1,"value":"0:1:int","nodeID":2}]},{"name":"empty"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	want := []string{
		`warning: can.json: devices[0].timeseries[0].nodeID: unknown key, ignored (did you mean "nodeId"?)`,
		`warning: can.json: devices[1]: device "empty" has no attributes, timeseries, attributeUpdates or serverSideRpc`,
		`warning: can.json: reconectPeriod: unknown key, ignored (did you mean "reconnectPeriod"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEmptyByteorderIsDefault(t *testing.T) {
	cfg := loadOK(t, `{"channel":"c","devices":[{"name":"d","timeseries":[{"key":"a","nodeId":1,"value":{"start":0,"length":2,"type":"int","byteorder":""}}],
		"attributeUpdates":[{"attributeOnThingsBoard":"x","nodeId":2,"dataByteorder":"","dataLength":2}]}]}`)
	if cfg.Devices[0].Timeseries[0].Value.Order != BigEndian || cfg.Devices[0].AttributeUpdates[0].DataByteorder != BigEndian {
		t.Error("empty byteorder is not big")
	}
}
