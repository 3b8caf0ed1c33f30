package jsonconv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/pyre"
)

const tenValuesPayload = `{"ts":1700000000000,"v0":12.5,"v1":13.5,"v2":14.5,"v3":15.5,"v4":16.5,"v5":17.5,"v6":18.5,"v7":19.5,"v8":20.5,"v9":21.5}`

// fastMappings all qualify for the fast path; between them they use every
// source kind, templates, tsField, useReceivedTs and every value type.
func fastMappings() []string {
	var ts []string
	for i := range 10 {
		ts = append(ts, fmt.Sprintf(`{"type":"double","key":"v%d","value":"${v%d}"}`, i, i))
	}
	return []string{
		// The end-to-end benchmark's mapping.
		`{"topicFilter":"sensor/+/data","converter":{"type":"json","deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"sensor/([^/]+)/data",
			"deviceProfileExpressionSource":"constant","deviceProfileExpression":"sensor"},"timeseries":[` + strings.Join(ts, ",") + `]}}`,
		`{"topicFilter":"sensor/data","converter":{"type":"json","deviceInfo":{"deviceNameExpression":"${serialNumber}",
			"deviceProfileExpressionSource":"message","deviceProfileExpression":"${sensorType}"},"timeseries":[
			{"type":"double","key":"k0","value":"${v0}"},{"type":"int","key":"k1","value":"${v1}"},{"type":"float","key":"k2","value":"${v2}"},
			{"type":"bool","key":"k3","value":"${v3}"},{"type":"long","key":"k4","value":"${v4}"},{"type":"integer","key":"k5","value":"${v5}"},
			{"type":"raw","key":"k6","value":"${v6}"},{"type":"boolean","key":"k7","value":"${v7}"},{"key":"k8","value":"${v8}"},{"type":"string","key":"k9","value":"${v9}"}]}}`,
		`{"topicFilter":"+/+","converter":{"deviceInfo":{"deviceNameExpression":"dev-${serialNumber}-${v0}","deviceProfileExpression":"${ts}"},
			"tsField":"${time}","attributes":[{"type":"string","key":"a","value":"${v1} and ${v2}"},{"keySource":"topic","key":"([^/]+)$","value":"${v3}"},
			{"key":"${sensorType}","value":"${v4}"},{"type":"int","key":"c","value":"42"},{"key":"e","value":"$"}],
			"timeseries":[{"type":"double","key":"t","value":"${v5}"},{"keySource":"constant","key":"k ${x}","value":"${ v6 }"},{"type":"long","key":"w","value":"${weird key]}"}]}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},"useReceivedTs":true,"tsField":"${a.b}",
			"timeseries":[{"type":"int","key":"t","value":"${v1}"},{"key":"ts","value":"${ts}"}]}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"${v9}"},"attributes":[{"type":"bool","key":"on","value":"${v7}"}],
			"timeseries":[{"key":"t","value":"${v1}","tsField":"when"}]}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"${serialNumber}"},"attributes":[{"key":"only","value":"${v0}"}],
			"timeseries":[{"type":"json","key":"j","value":"${v2}"},{"type":"json","key":"jt","value":"[${v3},${v0}]"}]}}`,
	}
}

func fastConverters(t testing.TB) []*JSONConverter {
	var out []*JSONConverter
	for i, js := range fastMappings() {
		c := converterFrom(t, js).(*JSONConverter)
		if c.fast == nil {
			t.Fatalf("mapping %d does not qualify for the fast path", i)
		}
		out = append(out, c)
	}
	return out
}

var fastTopics = []string{"sensor/d7/data", "sensor/data", "a/b", "sensor//data", ""}

// checkFastPath converts with Convert (fast path first) and with the
// general path alone, and fails on any difference. The payload buffer is
// overwritten after the fast conversion to catch results aliasing it.
func checkFastPath(t *testing.T, c *JSONConverter, topic string, payload []byte) {
	t.Helper()
	want, werr := c.convertGeneral(nil, topic, string(payload), now)
	buf := append([]byte(nil), payload...)
	got, err := c.Convert(topic, buf, now)
	for i := range buf {
		buf[i] = '#'
	}
	if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) || !reflect.DeepEqual(err, werr) {
		t.Fatalf("topic %q payload %q: err %v, general path err %v", topic, payload, err, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("topic %q payload %q:\n got %s\nwant %s", topic, payload, render(got), render(want))
	}
}

// checkSkip holds skip to value's grammar: it accepts what value accepts and
// stops at the same offset.
func checkSkip(t *testing.T, payload []byte) {
	t.Helper()
	a, b := parser{s: string(payload)}, parser{s: string(payload)}
	ok := a.skip()
	_, err := b.value()
	if ok != (err == nil) || (ok && a.i != b.i) {
		t.Fatalf("%q: skip %v at %d, value err %v at %d", payload, ok, a.i, err, b.i)
	}
}

func TestJSONFastPathTaken(t *testing.T) {
	cs := fastConverters(t)
	for _, tt := range []struct {
		c       *JSONConverter
		topic   string
		payload string
	}{
		{cs[0], "sensor/d7/data", tenValuesPayload},
		{cs[1], "sensor/data", benchPayload},
		{converterFrom(t, benchMapping()).(*JSONConverter), "sensor/data", benchPayload},
	} {
		if _, err := tt.c.fast.convert(tt.c, nil, tt.topic, tt.payload, now); err != nil {
			t.Errorf("%s: %v", tt.payload, err)
		}
		checkFastPath(t, tt.c, tt.topic, []byte(tt.payload))
	}
	for _, js := range []string{
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"${a.b}"},"timeseries":[{"key":"t","value":"${t}"}]}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"d"},"timeseries":[{"key":"t","value":"${$.t}"}]}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"d"},"timeseries":[{"key":"t","value":"${t[0]}"}]}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"d"},"timeseries":"*"}}`,
		`{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpression":"d"},"tsField":"a.b","timeseries":[{"key":"t","value":"${t}"}]}}`,
	} {
		if c := converterFrom(t, js).(*JSONConverter); c.fast != nil {
			t.Errorf("%s qualifies for the fast path", js)
		}
	}
}

func TestJSONFastPathAllocs(t *testing.T) {
	c := fastConverters(t)[0]
	payload := []byte(tenValuesPayload)
	// The payload copy, the datapoints and the result; the device name is
	// the cached topic match.
	if n := testing.AllocsPerRun(100, func() { c.Convert("sensor/d7/data", payload, now) }); n > 3 {
		t.Errorf("%v allocations per message", n)
	}
}

// randomPayload builds mostly well-formed objects over the keys the fast
// mappings read, with the values and shapes that take either path.
func randomPayload(r *rand.Rand) []byte {
	keys := []string{"serialNumber", "sensorType", "ts", "timestamp", "time", "when", "x", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
		" v6 ", "weird key]", "other", "a", "a.b", `v\u0031`, "v\\u0030", "\xff"}
	scalars := []string{`0`, `-0`, `1`, `-7`, `12.5`, `1e3`, `1E-2`, `3.14159`, `1700000000`, `1700000000000`, `1e400`, `-1`, `9223372036854775807`,
		`9223372036854775808`, `-9223372036854775809`, `1e19`, `0.5e1`, `true`, `false`, `null`, `""`, `"x"`, `"SN-001"`, `"3.25"`, `" 42 "`, `"on"`,
		`"OFF"`, `"yes"`, `"1"`, `"0"`, `"NaN"`, `"inf"`, `"2024-01-02T03:04:05Z"`, `"2024-01-02 03:04:05"`, `"a\"b"`, `"\u00e9\ud83d\ude00"`,
		`"\ud800"`, "\"\xff\"", `"` + strings.Repeat("long", 20) + `"`, `"1700000000"`, `"-5"`, `"t"`}
	complexes := []string{`{}`, `[]`, `{"a":[1,{"b":null}]}`, `[1,"2",[true]]`, `{"b":1}`}
	broken := []string{`01`, `1.`, `-`, `tru`, `nul`, `"\x"`, `"\u12"`, "\"\x01\"", `{"a"}`, `[1,]`, `{,}`, `"abc`, `1e`, `+1`}
	ws := []string{"", "", "", " ", "\n\t", "\r "}
	w := func() string { return ws[r.IntN(len(ws))] }
	value := func() string {
		switch n := r.IntN(100); {
		case n < 80:
			return scalars[r.IntN(len(scalars))]
		case n < 95:
			return complexes[r.IntN(len(complexes))]
		default:
			return broken[r.IntN(len(broken))]
		}
	}
	var b strings.Builder
	switch r.IntN(40) {
	case 0:
		b.WriteString("[")
		defer b.WriteString("]")
	case 1:
		return []byte(value())
	}
	b.WriteString(w() + "{")
	var members []string
	if r.IntN(2) == 0 {
		// Every key most mappings need, mostly with values they accept, so
		// a good share of messages convert without error.
		good := []string{`1`, `0`, `true`, `false`, `"1"`, `"0"`, `"1.5"`, `-2.5`, `1e2`, `"on"`, `1700000000`}
		for _, k := range keys[:19] {
			v := good[r.IntN(len(good))]
			if r.IntN(30) == 0 {
				v = value()
			}
			members = append(members, `"`+k+`"`+w()+":"+w()+v)
		}
	}
	for range r.IntN(8) {
		members = append(members, `"`+keys[r.IntN(len(keys))]+`"`+w()+":"+w()+value())
	}
	r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	for i, m := range members {
		if i > 0 {
			b.WriteString(w() + "," + w())
		}
		b.WriteString(w() + m)
	}
	b.WriteString(w() + "}" + w())
	if r.IntN(50) == 0 {
		b.WriteString("x")
	}
	return []byte(b.String())
}

func TestJSONFastPathDifferential(t *testing.T) {
	cs := fastConverters(t)
	r := rand.New(rand.NewPCG(1, 2))
	n := 5000
	if testing.Short() {
		n = 500
	}
	for range n {
		p := randomPayload(r)
		checkSkip(t, p)
		for _, c := range cs {
			for _, topic := range fastTopics {
				checkFastPath(t, c, topic, p)
			}
		}
	}
}

func FuzzJSONFastPath(f *testing.F) {
	f.Add("sensor/d7/data", []byte(tenValuesPayload))
	f.Add("sensor/data", []byte(benchPayload))
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(fastTopics[r.IntN(len(fastTopics))], randomPayload(r))
	}
	f.Add("a/b", []byte(`{"serialNumber":"s","v0":1,"v0":{},"ts":"2024-01-02T03:04:05Z","time":`+strconv.Quote("1700000000")+`}`))
	f.Add("a/b", []byte(`{"serialNumber":"s","v0":"{\"a\":[1]}","v2":"[true, {\"x\":\"\u00e9\"}]","v3":{"n":1}}`))
	cs := fastConverters(f)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		checkSkip(t, payload)
		for _, c := range cs {
			checkFastPath(t, c, topic, payload)
		}
	})
}

// checkParseNumber holds parseNumber to strconv.ParseFloat, bit for bit and
// error for error.
func checkParseNumber(t *testing.T, s string) {
	t.Helper()
	got, err := parseNumber(s)
	want, werr := strconv.ParseFloat(s, 64)
	if math.Float64bits(got) != math.Float64bits(want) || fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("parseNumber(%q) = %v, %v; strconv: %v, %v", s, got, err, want, werr)
	}
}

func TestParseNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "0.0", "-0.000", "1", "12.5", "-7", "3.14159", "1700000000000", "999999999999999", "9999999999999999",
		"0.1", "0.3", "1.7976931348623157", "123456789012345.6", "0.0000000000000000000001", "0.00000000000000000000001", "4503599627370497",
		"9007199254740993", "1e3", "1.5e-7", "1.", ".5", "-.5", ".", "-", "", "00012", "1..2", "1e400", "0x10", "inf", "1_0"} {
		checkParseNumber(t, s)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		var b []byte
		if r.IntN(2) == 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, r.Uint64N(1<<r.IntN(64)), 10)
		if r.IntN(3) > 0 {
			b = append(b, '.')
			for range r.IntN(25) {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		checkParseNumber(t, string(b))
	}
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "12.5", "123456789012345.6", "0.0000000000000000000001", "1e3", ".5"} {
		f.Add(s)
	}
	f.Fuzz(checkParseNumber)
}

// BenchmarkJSONFastPath is the end-to-end benchmark's message and mapping
// (device name from the topic, ten doubles) on each path.
func BenchmarkJSONFastPath(b *testing.B) {
	c := fastConverters(b)[0]
	payload := []byte(tenValuesPayload)
	for _, path := range []string{"fast", "general"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if path == "fast" {
					_, err = c.Convert("sensor/d7/data", payload, now)
				} else {
					_, err = c.convertGeneral(nil, "sensor/d7/data", string(payload), now)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestTopicCache(t *testing.T) {
	re := pyre.MustCompile(`sensor/([^/]+)/data`, pyre.Search)
	var tc topicCache
	r := rand.New(rand.NewPCG(7, 8))
	long := strings.Repeat("x", 1000)
	for i := range 50000 {
		var topic string
		switch i % 4 {
		case 0:
			topic = fmt.Sprintf("sensor/d%d/data", r.IntN(100))
		case 1:
			topic = fmt.Sprintf("sensor/d%d/data", r.IntN(10000))
		case 2:
			topic = fmt.Sprintf("other/d%d", r.IntN(100))
		default:
			topic = fmt.Sprintf("sensor/%s%d/data", long, r.IntN(1000))
		}
		v, ok, err := tc.match(re, topic)
		wv, wok, werr := topicMatch(re, topic)
		if v != wv || ok != wok || err != nil || werr != nil {
			t.Fatalf("%q: got %q %v, want %q %v", topic, v, ok, wv, wok)
		}
		if len(tc.m) > maxTopicCache || tc.size > maxTopicCacheBytes {
			t.Fatalf("cache holds %d topics, %d bytes", len(tc.m), tc.size)
		}
	}
}
