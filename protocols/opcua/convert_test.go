package opcua

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

func TestConvertVariant(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.FixedZone("x", 3600))
	cases := []struct {
		in   any
		want string
		kind protocols.Kind
	}{
		{true, "true", protocols.KindBool},
		{int16(-3), "-3", protocols.KindInt},
		{uint32(7), "7", protocols.KindUint},
		{float32(21.1), "21.1", protocols.KindFloat},
		{203.5, "203.5", protocols.KindFloat},
		{"OK", "OK", protocols.KindString},
		{ts, "2024-05-06T06:08:09.123456Z", protocols.KindString},
		{ua.StatusBadNodeIDUnknown, "BadNodeIdUnknown", protocols.KindString},
		{ua.StatusOK, "Good", protocols.KindString},
		{[]byte{0xde, 0xad}, "dead", protocols.KindString},
		{ua.NewStringNodeID(2, "X"), "ns=2;s=X", protocols.KindString},
		{&ua.QualifiedName{NamespaceIndex: 2, Name: "Battery"}, "2:Battery", protocols.KindString},
		{&ua.LocalizedText{Text: "hello"}, "hello", protocols.KindString},
		{[]int32{1, 2}, `["1","2"]`, protocols.KindString},
		{[]string{"a", "b\""}, `["a","b\""]`, protocols.KindString},
		{[]float64{1.5}, `["1.5"]`, protocols.KindString},
	}
	for _, c := range cases {
		v := ConvertVariant(ua.MustVariant(c.in))
		if v.String() != c.want || v.Kind != c.kind {
			t.Errorf("ConvertVariant(%#v) = %q (kind %d), want %q (kind %d)", c.in, v.String(), v.Kind, c.want, c.kind)
		}
	}
	if v := ConvertVariant(nil); v.Kind != protocols.KindNull {
		t.Errorf("nil variant = %v", v)
	}
}

func TestConvertDataValueBadStatus(t *testing.T) {
	v, err := ConvertDataValue(&ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadNodeIDUnknown}, "ns=3;i=8")
	if v.String() != "Bad status code: BadNodeIdUnknown for node: ns=3;i=8" {
		t.Fatalf("value = %q", v.String())
	}
	if !errors.Is(err, ErrBadStatus) || !errors.Is(err, protocols.ErrException) || protocols.ErrorKind(err) != protocols.KindException {
		t.Fatalf("err = %v", err)
	}
	// Uncertain values are forwarded as values.
	v, err = ConvertDataValue(&ua.DataValue{EncodingMask: ua.DataValueStatusCode | ua.DataValueValue, Status: ua.StatusUncertainLastUsableValue, Value: ua.MustVariant(1.5)}, "n")
	if err != nil || v.String() != "1.5" {
		t.Fatalf("uncertain = %v, %v", v, err)
	}
}

func TestToDataType(t *testing.T) {
	n := func(i uint32) *ua.NodeID { return ua.NewNumericNodeID(0, i) }
	cases := []struct {
		in   any
		dt   uint32
		want any
		err  bool
	}{
		{int64(42), id.Int32, int32(42), false},
		{int64(1 << 40), id.Int32, nil, true},
		{3.0, id.Int16, int16(3), false},
		{3.7, id.Int32, nil, true},
		{int64(-1), id.UInt16, nil, true},
		{int64(255), id.Byte, uint8(255), false},
		{int64(2), id.Float, float32(2), false},
		{"2.5", id.Double, 2.5, false},
		{"abc", id.Double, nil, true},
		{"true", id.Boolean, true, false},
		{int64(0), id.Boolean, false, false},
		{int64(7), id.String, "7", false},
		{"00ff", id.ByteString, []byte{0, 0xff}, false},
	}
	for _, c := range cases {
		got, err := ToDataType(c.in, n(c.dt))
		if (err != nil) != c.err {
			t.Errorf("ToDataType(%#v, %s) error = %v", c.in, DataTypeName(n(c.dt)), err)
			continue
		}
		if !c.err {
			if fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", c.want, c.want) {
				t.Errorf("ToDataType(%#v, %s) = %#v, want %#v", c.in, DataTypeName(n(c.dt)), got, c.want)
			}
		}
	}
	if _, err := ToDataType(int64(1), ua.NewNumericNodeID(2, 3000)); err == nil || !errors.Is(err, ErrValue) {
		t.Errorf("custom data type err = %v", err)
	}
}

func TestGuessValue(t *testing.T) {
	for in, want := range map[string]any{"56": int64(56), "35.5": 35.5, "true": true, "RUN": "RUN"} {
		if got := GuessValue(in); got != want {
			t.Errorf("GuessValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}

// fakeIO answers like a server whose node is an Int32: any other variant
// type is BadTypeMismatch.
type fakeIO struct {
	writes []*ua.Variant
	reads  int
}

func (f *fakeIO) Read(ctx context.Context, req *ua.ReadRequest) (*ua.ReadResponse, error) {
	f.reads++
	return &ua.ReadResponse{Results: []*ua.DataValue{{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(ua.NewNumericNodeID(0, id.Int32))}}}, nil
}

func (f *fakeIO) Write(ctx context.Context, req *ua.WriteRequest) (*ua.WriteResponse, error) {
	v := req.NodesToWrite[0].Value.Value
	f.writes = append(f.writes, v)
	if v.Type() != ua.TypeIDInt32 {
		return &ua.WriteResponse{Results: []ua.StatusCode{ua.StatusBadTypeMismatch}}, nil
	}
	return &ua.WriteResponse{Results: []ua.StatusCode{ua.StatusOK}}, nil
}

func (f *fakeIO) Call(ctx context.Context, req *ua.CallMethodRequest) (*ua.CallMethodResult, error) {
	return nil, errors.New("not used")
}

func TestWriteRetriesWithTheNodesDataType(t *testing.T) {
	f := &fakeIO{}
	var types dataTypes
	node := ua.NewStringNodeID(2, "Setpoint")
	got, err := writeValue(context.Background(), f, &types, node, int64(42))
	if err != nil || got != int32(42) {
		t.Fatalf("writeValue = %#v, %v", got, err)
	}
	if len(f.writes) != 2 || f.reads != 1 {
		t.Fatalf("writes %d reads %d, want 2 and 1", len(f.writes), f.reads)
	}
	// The data type is remembered: the next write is converted up front.
	if _, err := writeValue(context.Background(), f, &types, node, int64(7)); err != nil || len(f.writes) != 3 || f.reads != 1 {
		t.Fatalf("second write: %v, writes %d reads %d", err, len(f.writes), f.reads)
	}
	// A value that cannot be an Int32 is a clear error.
	_, err = writeValue(context.Background(), f, &types, ua.NewStringNodeID(2, "Other"), "abc")
	if err == nil || !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "Int32") {
		t.Fatalf("mismatch error = %v", err)
	}
}

func TestMethodArgs(t *testing.T) {
	cfg := []Argument{{Type: "int32", Value: json.Number("2")}, {Type: "", Value: json.Number("4")}}
	got, err := methodArgs(cfg, nil)
	if err != nil || got[0] != int32(2) || got[1] != int64(4) {
		t.Fatalf("config args = %#v, %v", got, err)
	}
	got, err = methodArgs(cfg, json.RawMessage(`{"arguments":[{"value":5},{"type":"double","value":6}]}`))
	if err != nil || got[0] != int32(5) || got[1] != 6.0 {
		t.Fatalf("params args = %#v, %v", got, err)
	}
	got, err = methodArgs(nil, json.RawMessage(`[5, "x"]`))
	if err != nil || got[0] != int64(5) || got[1] != "x" {
		t.Fatalf("list args = %#v, %v", got, err)
	}
	if _, err := methodArgs(nil, json.RawMessage(`{"nope":1}`)); !errors.Is(err, ErrParams) {
		t.Fatalf("bad params err = %v", err)
	}
}

func TestStatusName(t *testing.T) {
	if got := StatusName(ua.StatusBadSessionIDInvalid); got != "BadSessionIdInvalid" {
		t.Fatal(got)
	}
	if got := StatusName(ua.StatusCode(0x80FF0000)); !strings.HasPrefix(got, "Bad(") {
		t.Fatal(got)
	}
}

func TestBackoff(t *testing.T) {
	if d := backoff(time.Second, 2, 3); d != 8*time.Second {
		t.Fatal(d)
	}
	if d := backoff(time.Second, 2, 100); d != MaxBackoff {
		t.Fatal(d)
	}
	if d := backoff(time.Second, 1, 5); d != time.Second {
		t.Fatal(d)
	}
}
