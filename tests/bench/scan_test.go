package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestScanTelemetryMatchesJSON(t *testing.T) {
	payloads := []string{
		`{"sim0-dev-1":[{"ts":1700000000000,"values":{"r0":1,"r1":2.5,"r99":42}},{"ts":1700000000020,"values":{"r0":"a,}\"]","r99":43}}],"d\"2":[{"ts":5,"values":{"x":{"a":[1,{"b":2}]},"y":true,"z":null}}]}`,
		`{}`,
		`{ "a" : [ { "values" : { "k" : 1 } , "ts" : 7 } ] }`,
	}
	for _, p := range payloads {
		var got []string
		if !scanTelemetry([]byte(p), "r99", func(dev []byte, ts int64, n int, seq []byte) {
			got = append(got, fmt.Sprintf("%s %d %d %s", dev, ts, n, seq))
		}) {
			t.Fatalf("scan refused %s", p)
		}
		var body map[string][]struct {
			Ts     int64                      `json:"ts"`
			Values map[string]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal([]byte(p), &body); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, es := range body {
			n += len(es)
		}
		if len(got) != n {
			t.Fatalf("%s: scanned %v, json has %d entries", p, got, n)
		}
	}
	want := []string{"sim0-dev-1 1700000000000 3 42", "sim0-dev-1 1700000000020 2 43", `d\"2 5 3 `}
	var got []string
	scanTelemetry([]byte(payloads[0]), "r99", func(dev []byte, ts int64, n int, seq []byte) {
		got = append(got, fmt.Sprintf("%s %d %d %s", dev, ts, n, seq))
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{`{"a":[{"ts":x}]}`, `{"a":[`, `[1]`, `{"a":[{"values":{"k":}}]}`} {
		if scanTelemetry([]byte(bad), "", func([]byte, int64, int, []byte) {}) {
			t.Errorf("scan took %s", bad)
		}
	}
}

func TestSwitchCounts(t *testing.T) {
	status := "Name:\tiotgw\nThreads:\t8\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n"
	v, n := switchCounts(bufio.NewScanner(strings.NewReader(status)))
	if v != 1234 || n != 56 {
		t.Fatalf("switchCounts = %d, %d; want 1234, 56", v, n)
	}
	// This process has been scheduled out at least once by now.
	if v, n := contextSwitches(os.Getpid()); v+n == 0 {
		t.Fatalf("contextSwitches(self) = 0, 0")
	}
}
