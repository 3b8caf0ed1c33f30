package platform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/race"
)

func tele(dev string, ts int64, kv ...any) protocols.Event {
	return protocols.Event{Kind: protocols.EventTelemetry, Device: dev, Ts: ts, Values: dps(kv...)}
}

func attrs(dev string, kv ...any) protocols.Event {
	return protocols.Event{Kind: protocols.EventAttributes, Device: dev, Values: dps(kv...)}
}

func connect(dev, typ string) protocols.Event {
	return protocols.Event{Kind: protocols.EventConnect, Device: dev, DeviceType: typ}
}

func disconnect(dev string) protocols.Event {
	return protocols.Event{Kind: protocols.EventDisconnect, Device: dev}
}

func dps(kv ...any) []protocols.Datapoint {
	var out []protocols.Datapoint
	for i := 0; i < len(kv); i += 2 {
		var v protocols.Value
		switch x := kv[i+1].(type) {
		case protocols.Value:
			v = x
		case int:
			v = protocols.Int(int64(x))
		case float64:
			v = protocols.Float(x)
		case string:
			v = protocols.String(x)
		case bool:
			v = protocols.Bool(x)
		case nil:
		default:
			panic(fmt.Sprintf("unsupported %T", x))
		}
		out = append(out, protocols.Datapoint{Key: kv[i].(string), Value: v})
	}
	return out
}

func TestConnectDisconnectPayload(t *testing.T) {
	cases := []struct{ got, want string }{
		{string(ConnectPayload("Dev A", "thermo")), `{"device":"Dev A","type":"thermo"}`},
		{string(ConnectPayload("Dev A", "")), `{"device":"Dev A","type":"default"}`},
		{string(ConnectPayload(`q"\`, "t\n")), `{"device":"q\"\\","type":"t\n"}`},
		{string(DisconnectPayload("Dev A")), `{"device":"Dev A"}`},
		{string(DisconnectPayload("\x01")), `{"device":"\u0001"}`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

type wantMsg struct {
	topic, payload string
	values         int
}

func TestPackShapes(t *testing.T) {
	cases := []struct {
		name   string
		events []protocols.Event
		want   []wantMsg
	}{
		{
			name:   "telemetry",
			events: []protocols.Event{tele("Dev A", 1700000000000, "t", 21.5, "h", 40)},
			want:   []wantMsg{{TopicTelemetry, `{"Dev A":[{"ts":1700000000000,"values":{"t":21.5,"h":40}}]}`, 2}},
		},
		{
			name:   "attributes",
			events: []protocols.Event{attrs("Dev A", "fw", "1.0", "connectorType", "modbus")},
			want:   []wantMsg{{TopicAttributes, `{"Dev A":{"fw":"1.0","connectorType":"modbus"}}`, 2}},
		},
		{
			name: "per device order connect attributes telemetry disconnect",
			events: []protocols.Event{
				tele("A", 2, "x", 1),
				connect("B", "pump"),
				attrs("A", "k", "v"),
				disconnect("A"),
				connect("A", "meter"),
				tele("B", 5, "y", true),
				tele("A", 3, "x", 2),
				disconnect("A"),
			},
			want: []wantMsg{
				{TopicConnect, `{"device":"A","type":"meter"}`, 0},
				{TopicConnect, `{"device":"B","type":"pump"}`, 0},
				{TopicAttributes, `{"A":{"k":"v"}}`, 1},
				{TopicTelemetry, `{"A":[{"ts":2,"values":{"x":1}},{"ts":3,"values":{"x":2}}],"B":[{"ts":5,"values":{"y":true}}]}`, 3},
				{TopicDisconnect, `{"device":"A"}`, 0},
			},
		},
		{
			name: "several devices per message, the gateway's own apart",
			events: []protocols.Event{
				tele("A", 1, "x", 1),
				attrs("B", "fw", "2"),
				tele("", 1, "cpu", 3),
				tele("B", 1, "y", 2),
				attrs("A", "fw", "1"),
				tele("A", 2, "x", 4),
			},
			want: []wantMsg{
				{TopicMeTelemetry, `[{"ts":1,"values":{"cpu":3}}]`, 1},
				{TopicAttributes, `{"A":{"fw":"1"},"B":{"fw":"2"}}`, 2},
				{TopicTelemetry, `{"A":[{"ts":1,"values":{"x":1}},{"ts":2,"values":{"x":4}}],"B":[{"ts":1,"values":{"y":2}}]}`, 3},
			},
		},
		{
			name:   "disconnect then connect collapses to connect",
			events: []protocols.Event{disconnect("A"), connect("A", ""), tele("A", 1, "x", 1)},
			want: []wantMsg{
				{TopicConnect, `{"device":"A","type":"default"}`, 0},
				{TopicTelemetry, `{"A":[{"ts":1,"values":{"x":1}}]}`, 1},
			},
		},
		{
			name: "same ts merged, repeated key keeps first position and last value",
			events: []protocols.Event{
				tele("A", 1, "a", 1, "b", 2),
				tele("A", 2, "a", 3),
				tele("A", 1, "c", 4, "a", 5),
				attrs("A", "p", 1, "q", 2),
				attrs("A", "p", 3),
			},
			want: []wantMsg{
				{TopicAttributes, `{"A":{"p":3,"q":2}}`, 2},
				{TopicTelemetry, `{"A":[{"ts":1,"values":{"a":5,"b":2,"c":4}},{"ts":2,"values":{"a":3}}]}`, 4},
			},
		},
		{
			name: "gateway itself",
			events: []protocols.Event{
				connect("", "x"),
				tele("", 7, "cpu", 0.5),
				attrs("", "Version", "1.2"),
				disconnect(""),
			},
			want: []wantMsg{
				{TopicMeAttributes, `{"Version":"1.2"}`, 1},
				{TopicMeTelemetry, `[{"ts":7,"values":{"cpu":0.5}}]`, 1},
			},
		},
		{
			name: "value kinds",
			events: []protocols.Event{tele("A", -1,
				"b", false, "i", -7, "u", protocols.Uint(math.MaxUint64), "f", 1e21, "nan", math.NaN(),
				"inf", math.Inf(-1), "s", "a\"b\\c\n\x01é", "null", nil)},
			want: []wantMsg{{TopicTelemetry,
				`{"A":[{"ts":-1,"values":{"b":false,"i":-7,"u":18446744073709551615,"f":1e+21,"nan":"NaN",` +
					`"inf":"-Inf","s":"a\"b\\c\n\u0001é","null":null}}]}`, 8}},
		},
		{
			name:   "empty events produce nothing",
			events: []protocols.Event{tele("A", 1), attrs("B"), {Kind: 99, Device: "C"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Pack(c.events, 0, nil)
			if len(got) != len(c.want) {
				t.Fatalf("got %d messages, want %d: %s", len(got), len(c.want), dump(got))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Topic != w.topic || string(g.Payload) != w.payload || g.Values != w.values {
					t.Errorf("message %d:\n got %s %s (%d)\nwant %s %s (%d)", i, g.Topic, g.Payload, g.Values, w.topic, w.payload, w.values)
				}
			}
			checkPack(t, c.events, 0, got)
		})
	}
}

func dump(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "\n  %s %s (%d)", m.Topic, m.Payload, m.Values)
	}
	return b.String()
}

func TestPackSplitExact(t *testing.T) {
	ev := []protocols.Event{tele("A", 1, "a", 1, "b", 2, "c", 3), tele("A", 2, "d", 4)}
	// {"A":[{"ts":1,"values":{"a":1,"b":2}}]} is 39 bytes.
	got := Pack(ev, 39, nil)
	if len(got) != 3 {
		t.Fatalf("got %s", dump(got))
	}
	if string(got[0].Payload) != `{"A":[{"ts":1,"values":{"a":1,"b":2}}]}` || got[0].Values != 2 {
		t.Errorf("first: %s", got[0].Payload)
	}
	if string(got[1].Payload) != `{"A":[{"ts":1,"values":{"c":3}}]}` {
		t.Errorf("second: %s", got[1].Payload)
	}
	if string(got[2].Payload) != `{"A":[{"ts":2,"values":{"d":4}}]}` {
		t.Errorf("third: %s", got[2].Payload)
	}
	// A limit that fits the whole first entry exactly keeps it whole.
	want := []string{`{"A":[{"ts":1,"values":{"a":1,"b":2,"c":3}}]}`, `{"A":[{"ts":2,"values":{"d":4}}]}`}
	got = Pack(ev, len(want[0]), nil)
	if len(got) != 2 || string(got[0].Payload) != want[0] || string(got[1].Payload) != want[1] {
		t.Errorf("got %s", dump(got))
	}

	// A datapoint larger than the limit travels alone.
	big := strings.Repeat("x", 100)
	got = Pack([]protocols.Event{attrs("A", "a", 1, "big", big, "b", 2)}, 30, nil)
	wantAttr := []string{`{"A":{"a":1}}`, `{"A":{"big":"` + big + `"}}`, `{"A":{"b":2}}`}
	if len(got) != 3 {
		t.Fatalf("got %s", dump(got))
	}
	for i, w := range wantAttr {
		if string(got[i].Payload) != w || got[i].Values != 1 {
			t.Errorf("message %d: %s", i, got[i].Payload)
		}
	}
}

// checkPack verifies the invariants of Pack's output for any input: valid
// JSON of the right shape, each device at most once per message, the size limit, per
// device order, and that the values are exactly the input's (last value
// wins per device, kind, ts and key) with no duplicates.
func checkPack(t testing.TB, events []protocols.Event, max int, msgs []Message) {
	t.Helper()
	type dpKey struct {
		dev  string
		attr bool
		ts   int64
		key  string
	}
	want := map[dpKey]string{}
	type life struct{ connect, disconnect bool }
	lives := map[string]*life{}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Kind < protocols.EventTelemetry || e.Kind > protocols.EventDisconnect {
			continue
		}
		if e.Device == "" && (e.Kind == protocols.EventConnect || e.Kind == protocols.EventDisconnect) {
			continue // the gateway's own session is the MQTT connection
		}
		if !seen[e.Device] {
			seen[e.Device] = true
			lives[e.Device] = &life{}
		}
		l := lives[e.Device]
		switch e.Kind {
		case protocols.EventConnect:
			l.connect, l.disconnect = true, false
		case protocols.EventDisconnect:
			l.disconnect = true
		default:
			for _, dp := range e.Values {
				k := dpKey{dev: e.Device, attr: e.Kind == protocols.EventAttributes, key: dp.Key}
				if !k.attr {
					k.ts = e.Ts
				}
				want[k] = string(dp.Value.AppendJSON(nil))
			}
		}
	}

	got := map[dpKey]string{}
	add := func(k dpKey, v json.RawMessage) {
		if _, dup := got[k]; dup {
			t.Errorf("duplicate datapoint %+v", k)
		}
		got[k] = string(v)
	}
	type entry struct {
		Ts     *int64                     `json:"ts"`
		Values map[string]json.RawMessage `json:"values"`
	}
	stage := map[string]int{} // 0 connect, 1 attributes, 2 telemetry, 3 disconnect
	var i int
	var m Message
	// ordered checks that each device goes through the stages in order.
	ordered := func(dev string, st int) {
		if prev, ok := stage[dev]; ok && st < prev {
			t.Errorf("message %d (%s) for %q after stage %d", i, m.Topic, dev, prev)
		}
		stage[dev] = st
	}
	conns, disconns := map[string]int{}, map[string]int{}
	for i, m = range msgs {
		if !json.Valid(m.Payload) {
			t.Fatalf("message %d is not valid JSON: %q", i, m.Payload)
		}
		if max > 0 && len(m.Payload) > max && m.Values > 1 {
			t.Errorf("message %d: %d bytes > %d with %d values", i, len(m.Payload), max, m.Values)
		}
		var dev string
		var st, n int
		switch m.Topic {
		case TopicConnect, TopicDisconnect:
			var c struct {
				Device *string `json:"device"`
				Type   *string `json:"type"`
			}
			if err := json.Unmarshal(m.Payload, &c); err != nil || c.Device == nil {
				t.Fatalf("message %d: %v %s", i, err, m.Payload)
			}
			dev = *c.Device
			st = 0
			if m.Topic == TopicDisconnect {
				st = 3
				disconns[dev]++
				if !lives[dev].disconnect {
					t.Errorf("unexpected disconnect of %q", dev)
				}
			} else if conns[dev]++; c.Type == nil || !lives[dev].connect {
				t.Errorf("bad connect %s", m.Payload)
			}
		case TopicAttributes, TopicMeAttributes:
			st = 1
			var obj map[string]json.RawMessage
			if m.Topic == TopicAttributes {
				var outer map[string]map[string]json.RawMessage
				if err := json.Unmarshal(m.Payload, &outer); err != nil || len(outer) != len(topKeys(t, m.Payload)) {
					t.Fatalf("message %d: %v (a device twice?) %s", i, err, m.Payload)
				}
				for dev, obj = range outer {
					for k, v := range obj {
						add(dpKey{dev: dev, attr: true, key: k}, v)
						n++
					}
					ordered(dev, st)
				}
			} else {
				if err := json.Unmarshal(m.Payload, &obj); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				for k, v := range obj {
					add(dpKey{dev: dev, attr: true, key: k}, v)
					n++
				}
				ordered(dev, st)
			}
		case TopicTelemetry, TopicMeTelemetry:
			st = 2
			outer := map[string][]entry{}
			if m.Topic == TopicTelemetry {
				if err := json.Unmarshal(m.Payload, &outer); err != nil || len(outer) != len(topKeys(t, m.Payload)) {
					t.Fatalf("message %d: %v (a device twice?) %s", i, err, m.Payload)
				}
			} else {
				var entries []entry
				if err := json.Unmarshal(m.Payload, &entries); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				outer[""] = entries
			}
			for dev, entries := range outer {
				for _, e := range entries {
					if e.Ts == nil || len(e.Values) == 0 {
						t.Fatalf("message %d: bad entry in %s", i, m.Payload)
					}
					for k, v := range e.Values {
						add(dpKey{dev: dev, ts: *e.Ts, key: k}, v)
						n++
					}
				}
				ordered(dev, st)
			}
		default:
			t.Fatalf("unexpected topic %q", m.Topic)
		}
		if n != m.Values {
			t.Errorf("message %d: Values=%d, payload holds %d", i, m.Values, n)
		}
		if st == 0 || st == 3 {
			ordered(dev, st)
		}
	}
	for dev, l := range lives {
		wc, wd := 0, 0
		if dev != "" && l.connect {
			wc = 1
		}
		if dev != "" && l.disconnect {
			wd = 1
		}
		if conns[dev] != wc || disconns[dev] != wd {
			t.Errorf("device %q: %d connect and %d disconnect messages, want %d and %d", dev, conns[dev], disconns[dev], wc, wd)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d datapoints, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("datapoint %+v = %q, want %q", k, got[k], v)
		}
	}
}

// topKeys returns the keys of a JSON object in payload, repeats included.
func topKeys(t testing.TB, payload []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", payload)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%v: %s", err, payload)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%v: %s", err, payload)
		}
	}
	return keys
}

var devNames = []string{"Dev A", "", "pump-1", `quo"te\`, "ünï\tcode😀", "x"}

// Enough distinct keys for lists to outgrow the linear scan and switch to
// the hash index.
var keyNames = func() []string {
	k := []string{"t", "h", "temperature", "a\"b", "\x01", "ключ", "k"}
	for i := range 3 * linearKeys {
		k = append(k, fmt.Sprintf("key%d", i))
	}
	return k
}()

func randValue(r *rand.Rand, maxStr int) protocols.Value {
	switch r.IntN(7) {
	case 0:
		return protocols.Bool(r.IntN(2) == 1)
	case 1:
		return protocols.Int(r.Int64() - math.MaxInt64/2)
	case 2:
		return protocols.Uint(r.Uint64())
	case 3:
		return protocols.Float(r.NormFloat64() * 1e6)
	case 4:
		b := make([]byte, r.IntN(maxStr+1))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return protocols.String(string(b))
	case 5:
		return protocols.Value{}
	}
	return protocols.String(strings.Repeat("v", r.IntN(maxStr+1)))
}

func randEvents(r *rand.Rand, n, maxStr int) []protocols.Event {
	var evs []protocols.Event
	for range n {
		e := protocols.Event{Device: devNames[r.IntN(len(devNames))], Ts: int64(r.IntN(5)) * 1000}
		switch k := r.IntN(10); {
		case k == 0:
			e.Kind, e.DeviceType = protocols.EventConnect, "type"
		case k == 1:
			e.Kind = protocols.EventDisconnect
		case k < 4:
			e.Kind = protocols.EventAttributes
		default:
			e.Kind = protocols.EventTelemetry
		}
		if e.Kind == protocols.EventAttributes || e.Kind == protocols.EventTelemetry {
			for range r.IntN(3 * linearKeys) {
				e.Values = append(e.Values, protocols.Datapoint{Key: keyNames[r.IntN(len(keyNames))], Value: randValue(r, maxStr)})
			}
		}
		evs = append(evs, e)
	}
	return evs
}

func TestPackProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var dst []Message
	for iter := range 100 {
		evs := randEvents(r, 1+r.IntN(30), 1+r.IntN(200))
		for _, max := range []int{0, 1, 10, 30, 41, 64, 100, 128, 257, 500, 1024, 8196} {
			// Reuse dst to exercise the buffer-reuse path too.
			dst = Pack(evs, max, dst[:0])
			checkPack(t, evs, max, dst)
			if t.Failed() {
				t.Fatalf("iteration %d, max %d: events %+v\n%s", iter, max, evs, dump(dst))
			}
		}
	}
}

// JSON values reach the platform as nested JSON, not as strings.
func TestPackJSONValue(t *testing.T) {
	obj, err := protocols.JSON([]byte(`{"pos": {"lat": 1.5, "lon": -2}, "tags": ["a", "b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := protocols.JSON([]byte(`[1, 2]`))
	msgs := Pack([]protocols.Event{
		attrs("D", "cfg", obj, "s", `{"a":1}`),
		tele("D", 7, "l", list),
		tele("", 8, "o", obj),
	}, 0, nil)
	want := []string{
		TopicMeTelemetry + ` [{"ts":8,"values":{"o":{"pos":{"lat":1.5,"lon":-2},"tags":["a","b"]}}}]`,
		TopicAttributes + ` {"D":{"cfg":{"pos":{"lat":1.5,"lon":-2},"tags":["a","b"]},"s":"{\"a\":1}"}}`,
		TopicTelemetry + ` {"D":[{"ts":7,"values":{"l":[1,2]}}]}`,
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if got := m.Topic + " " + string(m.Payload); got != want[i] {
			t.Errorf("message %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

func TestPackStringEscaping(t *testing.T) {
	names := []string{"", "plain", `"`, `\`, "\b\f\n\r\t", "\x00\x1f\x7f", "é😀", "\u2028\u2029", "</script>"}
	for _, s := range names {
		ev := []protocols.Event{connect("d"+s, "t"+s), attrs("d"+s, "k"+s, s), tele("d"+s, 1, "k"+s, s)}
		msgs := Pack(ev, 0, nil)
		checkPack(t, ev, 0, msgs)
		var attr map[string]map[string]string
		if err := json.Unmarshal(msgs[1].Payload, &attr); err != nil || attr["d"+s]["k"+s] != s {
			t.Errorf("%q: %v %s", s, err, msgs[1].Payload)
		}
	}
	// Invalid UTF-8 is replaced, never passed through.
	msgs := Pack([]protocols.Event{attrs("d\xff", "k\xfe", "v\xc3")}, 0, nil)
	if !json.Valid(msgs[0].Payload) || !bytes.Contains(msgs[0].Payload, []byte(`\ufffd`)) {
		t.Errorf("got %q", msgs[0].Payload)
	}
}

func TestPackAllocations(t *testing.T) {
	evs := benchEvents(50, 10)
	dst := Pack(evs, DefaultMaxPayload, nil)
	allocs := testing.AllocsPerRun(100, func() {
		dst = Pack(evs, DefaultMaxPayload, dst[:0])
	})
	if allocs > 0 {
		t.Errorf("Pack with reused dst: %.1f allocs/op, want 0", allocs)
	}
}

// The packer's warm state must survive garbage collections, which at the
// throughput peak come dozens of times a second.
func TestPackStaysWarmAcrossGC(t *testing.T) {
	var evs []protocols.Event
	for d := range 50 {
		evs = append(evs, manyKeys(fmt.Sprintf("device-%03d", d), 1700000000000, 100, d, nil))
	}
	dst := Pack(evs, DefaultMaxPayload, nil)
	allocs := testing.AllocsPerRun(20, func() {
		runtime.GC()
		runtime.GC()
		dst = Pack(evs, DefaultMaxPayload, dst[:0])
	})
	if allocs > 0 {
		t.Errorf("Pack after two collections: %.1f allocs/op, want 0", allocs)
	}
}

// With fresh payload buffers (dst nil, as the uplink packs while earlier
// payloads are in flight), a full message costs one allocation once a
// batch has shown the size, not a series doubling from 512 bytes.
func TestPackSizesBuffersFromThePreviousBatch(t *testing.T) {
	var evs []protocols.Event
	for d := range 200 {
		evs = append(evs, manyKeys(fmt.Sprintf("device-%03d", d), 1700000000000, 100, d, nil))
	}
	msgs := Pack(evs, DefaultMaxPayload, nil)
	if len(msgs) < 4 {
		t.Fatalf("%d messages, want several full ones", len(msgs))
	}
	allocs := testing.AllocsPerRun(20, func() {
		msgs = Pack(evs, DefaultMaxPayload, nil)
	})
	// One buffer per message plus the doublings of the dst slice.
	if want := float64(len(msgs) + 8); allocs > want {
		t.Errorf("%.1f allocs for %d messages, want at most %.0f", allocs, len(msgs), want)
	}
}

func benchEvents(devices, perDevice int) []protocols.Event {
	var evs []protocols.Event
	ts := int64(1700000000000)
	for i := range perDevice {
		for d := range devices {
			evs = append(evs, tele(fmt.Sprintf("device-%03d", d), ts+int64(i)*1000,
				"temperature", 21.5+float64(i), "humidity", 40+i, "pressure", 1013.25,
				"status", "ok", "running", true, "counter", i*d, "voltage", 229.7, "current", 1.25))
		}
	}
	return evs
}

func BenchmarkPack(b *testing.B) {
	evs := benchEvents(50, 20) // 1000 events, 8000 values
	values := 0
	for _, e := range evs {
		values += len(e.Values)
	}
	dst := Pack(evs, DefaultMaxPayload, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = Pack(evs, DefaultMaxPayload, dst[:0])
	}
	b.ReportMetric(float64(values)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

func FuzzPack(f *testing.F) {
	f.Add([]byte("\x10\x00hello world, some fuzz seed bytes"), uint16(100))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, uint16(0))
	f.Add(bytes.Repeat([]byte{0xff, 0x22, 0x5c}, 50), uint16(7))
	f.Add([]byte("\x01\x00\x02\xc0\x0d{\"a\": [1, 2]}\xc0\x01x"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		evs := fuzzEvents(data)
		msgs := Pack(evs, int(max), nil)
		checkPack(t, evs, int(max), msgs)
		// The same with a cap on datapoints per message.
		maxN := int(max % 5)
		msgs = PackLimited(evs, int(max), maxN, nil)
		checkPack(t, evs, int(max), msgs)
		for _, m := range msgs {
			if maxN > 0 && m.Values > maxN {
				t.Fatalf("%d values in a message, limit %d: %s", m.Values, maxN, m.Payload)
			}
		}
	})
}

// fuzzEvents decodes arbitrary bytes into events. Device names and keys
// come from fixed valid-UTF-8 lists (invalid UTF-8 is replaced on the wire,
// so distinct names could merge and confuse the checker); string values
// take raw bytes.
func fuzzEvents(data []byte) []protocols.Event {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		c := data[0]
		data = data[1:]
		return c
	}
	var evs []protocols.Event
	for len(data) > 0 {
		c := next()
		e := protocols.Event{
			Kind:       protocols.EventKind(c%5 + 1), // includes an unknown kind
			Device:     devNames[int(c>>3)%len(devNames)],
			DeviceType: "t",
			Ts:         int64(int8(next())),
		}
		for n := int(next() % 40); n > 0 && len(data) > 0; n-- {
			k := next()
			dp := protocols.Datapoint{Key: keyNames[int(k)%len(keyNames)]}
			switch k >> 5 {
			case 0:
				dp.Value = protocols.Int(int64(int8(next())) << (next() % 56))
			case 1:
				dp.Value = protocols.Float(float64(int8(next())) / 3)
			case 2:
				dp.Value = protocols.Bool(next()&1 == 1)
			case 3:
				dp.Value = protocols.Uint(uint64(next()) << 56)
			case 4:
				dp.Value = protocols.Float(math.Inf(int(next()%3) - 1))
			case 5:
				dp.Value = protocols.Value{}
			case 6:
				// Raw bytes become a JSON value when they are JSON.
				l := min(int(next()), len(data))
				var err error
				if dp.Value, err = protocols.JSON(data[:l]); err != nil {
					dp.Value, _ = protocols.JSON([]byte(`{"a":[1,"\u00e9",{"b":null}]}`))
				}
				data = data[l:]
			default:
				l := min(int(next()), len(data))
				dp.Value = protocols.String(string(data[:l]))
				data = data[l:]
			}
			e.Values = append(e.Values, dp)
		}
		evs = append(evs, e)
	}
	return evs
}

// manyKeys is a telemetry event with n keys k0..k<n-1> valued base+i;
// rename maps a position to another key name (a repeat when it names an
// earlier key).
func manyKeys(dev string, ts int64, n, base int, rename map[int]string) protocols.Event {
	var kv []any
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if r, ok := rename[i]; ok {
			k = r
		}
		kv = append(kv, k, base+i)
	}
	return tele(dev, ts, kv...)
}

// Events with more keys than the linear scan covers take the path that
// skips per-value merging once the device's key list is known to have no
// repeats; a repeat within one event, a changed key list and a second
// event with the same ts must still merge like the general path.
func TestPackManyKeysMerges(t *testing.T) {
	one := func(evs ...protocols.Event) map[string][]map[string]any {
		t.Helper()
		msgs := Pack(evs, 0, nil)
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		var body map[string][]struct {
			Ts     int64          `json:"ts"`
			Values map[string]any `json:"values"`
		}
		if err := json.Unmarshal(msgs[0].Payload, &body); err != nil {
			t.Fatal(err)
		}
		out := map[string][]map[string]any{}
		for dev, es := range body {
			for _, e := range es {
				out[dev] = append(out[dev], e.Values)
			}
		}
		return out
	}
	for range 2 { // the second round runs with the layout remembered
		got := one(manyKeys("A", 1, 20, 0, nil), manyKeys("A", 2, 20, 100, nil))
		if len(got["A"]) != 2 || len(got["A"][0]) != 20 || got["A"][1]["k19"] != 119.0 {
			t.Fatalf("two polls: %v", got)
		}
		// k15 renamed to k3: k3 keeps one entry with the later value.
		got = one(manyKeys("A", 1, 20, 0, map[int]string{15: "k3"}))
		if len(got["A"][0]) != 19 || got["A"][0]["k3"] != 15.0 {
			t.Fatalf("repeat within an event: %v", got["A"][0])
		}
		// Same ts twice: one entry, the later values win.
		got = one(manyKeys("A", 1, 20, 0, nil), manyKeys("A", 1, 20, 100, nil))
		if len(got["A"]) != 1 || len(got["A"][0]) != 20 || got["A"][0]["k0"] != 100.0 {
			t.Fatalf("same ts: %v", got)
		}
	}
	msgs := Pack([]protocols.Event{manyKeys("A", 1, 20, 0, map[int]string{15: "k3"})}, 0, nil)
	if !strings.Contains(string(msgs[0].Payload), `"k2":2,"k3":15,"k4":4`) {
		t.Fatalf("a repeated key keeps its first position: %s", msgs[0].Payload)
	}
}

func BenchmarkPack100Keys(b *testing.B) {
	var evs []protocols.Event
	for i := range 4 {
		for d := range 50 {
			evs = append(evs, manyKeys(fmt.Sprintf("device-%03d", d), int64(1700000000000+i*20), 100, i, nil))
		}
	}
	dst := Pack(evs, DefaultMaxPayload, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = Pack(evs, DefaultMaxPayload, dst[:0])
	}
	b.ReportMetric(float64(len(evs)*100)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// TestPackReusesRecycledPayloads: payloads handed back after their PUBACK
// (RecyclePayload) serve the next Pack, which then allocates no buffers;
// what it writes into a recycled buffer is the same as into a fresh one.
func TestPackReusesRecycledPayloads(t *testing.T) {
	var evs []protocols.Event
	for d := range 200 {
		evs = append(evs, manyKeys(fmt.Sprintf("device-%03d", d), 1700000000000, 100, d, nil))
	}
	want := Pack(evs, DefaultMaxPayload, nil)
	var wantBytes [][]byte
	for _, m := range want {
		wantBytes = append(wantBytes, bytes.Clone(m.Payload))
		RecyclePayload(m.Payload)
	}
	got := Pack(evs, DefaultMaxPayload, nil)
	if len(got) != len(wantBytes) {
		t.Fatalf("%d messages, then %d", len(wantBytes), len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.Payload, wantBytes[i]) {
			t.Fatalf("message %d differs when packed into a recycled buffer", i)
		}
	}
	if race.Enabled {
		return // sync.Pool drops items at random under -race
	}
	allocs := testing.AllocsPerRun(20, func() {
		for _, m := range got {
			RecyclePayload(m.Payload)
		}
		got = Pack(evs, DefaultMaxPayload, nil)
	})
	// The dst slice's doublings only: every buffer is a recycled one.
	if allocs > 8 {
		t.Errorf("%.1f allocs for %d messages, want at most 8", allocs, len(got))
	}
}
