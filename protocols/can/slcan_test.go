package can

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	bcan "github.com/brutella/can"
)

func TestSlcanLineCodec(t *testing.T) {
	enc := []struct {
		f    Frame
		line string
	}{
		{Frame{ID: 0x102, Data: []byte{0, 0, 0xac, 0x41, 0x2a}}, "t10250000AC412A\r"},
		{Frame{ID: 0x7ff}, "t7FF0\r"},
		{Frame{ID: 418119424, Extended: true, Data: []byte{0xaa, 0xbb}}, "T18EBFF002AABB\r"},
		{Frame{ID: 0x103, Remote: true, Data: make([]byte, 2)}, "r1032\r"},
		{Frame{ID: 0x1ABCDEF, Extended: true, Remote: true}, "R01ABCDEF0\r"},
	}
	for _, c := range enc {
		got, err := AppendSlcan(nil, c.f)
		if err != nil || string(got) != c.line {
			t.Errorf("%v: %q %v, want %q", c.f, got, err, c.line)
		}
		back, ok, err := ParseSlcanLine(got[:len(got)-1])
		if err != nil || !ok || back.String() != c.f.String() {
			t.Errorf("%q parsed back to %v %v %v", got, back, ok, err)
		}
	}
	for _, bad := range []Frame{{ID: 1, FD: true, Data: make([]byte, 12)}, {ID: 0x800}, {ID: 1, Data: make([]byte, 9)}} {
		if _, err := AppendSlcan(nil, bad); err == nil {
			t.Errorf("%v encoded", bad)
		}
	}
	if _, err := AppendSlcan(nil, Frame{ID: 1, FD: true}); !errors.Is(err, ErrFDUnsupported) {
		t.Errorf("fd: %v", err)
	}

	parse := map[string]string{
		"t1031010123":     "0x103[std] 01",             // with a timestamp
		"t10250000ac412a": "0x102[std] 00 00 ac 41 2a", // lowercase hex
		"T000000012534E":  "0x1[ext] 53 4e",
		"r1031":           "0x103[std,rtr] dlc 1",
		"R1FFFFFFF81234":  "0x1fffffff[ext,rtr] dlc 8", // remote with timestamp
	}
	for line, want := range parse {
		f, ok, err := ParseSlcanLine([]byte(line))
		if err != nil || !ok || f.String() != want {
			t.Errorf("%q: %v %v %v, want %s", line, f, ok, err, want)
		}
	}
	for _, line := range []string{"", "z", "Z", "V1013", "N0001", "F00"} {
		if _, ok, err := ParseSlcanLine([]byte(line)); ok || err != nil {
			t.Errorf("%q: %v %v, want ignored", line, ok, err)
		}
	}
	bad := map[string]string{
		"t80010":      `bad slcan line: "t80010": id 0x800 out of range`,
		"T2000000010": `bad slcan line: "T2000000010": id 0x20000000 out of range`,
		"t1029":       `bad slcan line: "t1029": length '9' is not 0-8`,
		"t10220":      `bad slcan line: "t10220": want 4 data digits for length 2, got 1`,
		"t1021G0":     `bad slcan line: "t1021G0": data is not hex`,
		"t1X21":       `bad slcan line: "t1X21": id is not hex`,
		"t10":         `bad slcan line: "t10" is too short`,
		"t10210011X2": `bad slcan line: "t10210011X2": timestamp is not hex`,
		"d1231":       `bad slcan line: "d1231" is a CAN FD frame; the slcan transport takes classic frames only`,
		"hello":       `bad slcan line: "hello"`,
	}
	for line, want := range bad {
		_, ok, err := ParseSlcanLine([]byte(line))
		if ok || !errors.Is(err, ErrBadLine) || err.Error() != want {
			t.Errorf("%q: %v %v\nwant %s", line, ok, err, want)
		}
	}
}

// rwc is an in-memory adapter stream: reads from r, writes to w.
type rwc struct {
	io.Reader
	w bytes.Buffer
}

func (x *rwc) Write(p []byte) (int, error) { return x.w.Write(p) }
func (x *rwc) Close() error                { return nil }

func TestSlcanBusRecvStream(t *testing.T) {
	in := "\r\az\rt1021AA\r\nt1030\rgarbage\rT000000012534E\a\r" + strings.Repeat("x", 70)
	b := NewSlcanBus("mem", &rwc{Reader: strings.NewReader(in)})
	ctx := context.Background()
	var got []string
	for {
		f, err := b.Recv(ctx)
		if err != nil {
			got = append(got, "err: "+err.Error())
			if !errors.Is(err, ErrBadLine) {
				break
			}
			continue
		}
		got = append(got, f.String())
	}
	want := []string{
		"0x102[std] aa", "0x103[std] ", `err: bad slcan line: "garbage"`,
		`err: bad slcan line: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…": no CR within 64 bytes (wrong ttyBaudrate?)`,
		"err: slcan mem: read: unexpected EOF",
	}
	// The line before a BELL is not a frame: a BELL answers a command.
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if b.Bells() != 2 {
		t.Errorf("bells %d", b.Bells())
	}
}

func TestBrutellaBusOverPipe(t *testing.T) {
	a, b := net.Pipe()
	ours := NewBrutellaBus("pipe", a)
	peer := bcan.NewBus(bcan.NewReadWriteCloser(b))
	got := make(chan bcan.Frame, 4)
	peer.SubscribeFunc(func(f bcan.Frame) { got <- f })
	peerDone := make(chan error, 1)
	go func() { peerDone <- peer.ConnectAndPublish() }()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	if err := peer.Publish(bcan.Frame{ID: 0x123, Length: 2, Data: [8]byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if f, err := ours.Recv(ctx); err != nil || f.String() != "0x123[std] 01 02" {
		t.Errorf("std: %v %v", f, err)
	}
	if err := peer.Publish(bcan.Frame{ID: 0x1234 | bcan.MaskEff | bcan.MaskRtr, Length: 3, Data: [8]byte{9}}); err != nil {
		t.Fatal(err)
	}
	if f, err := ours.Recv(ctx); err != nil || f.String() != "0x1234[ext,rtr] dlc 3" || !bytes.Equal(f.Data, []byte{0, 0, 0}) {
		t.Errorf("ext rtr: %v %v", f, err)
	}

	if err := ours.Send(ctx, Frame{ID: 6, FD: true, Data: make([]byte, 12)}); !errors.Is(err, ErrFDUnsupported) {
		t.Errorf("fd: %v", err)
	}
	if err := ours.Send(ctx, Frame{ID: 0x1ABCDEF, Extended: true, Data: []byte{9, 8}}); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if f.ID != 0x1ABCDEF|bcan.MaskEff || f.Length != 2 || f.Data != [8]byte{9, 8} {
			t.Errorf("peer got %+v", f)
		}
	case <-ctx.Done():
		t.Fatal("peer got nothing")
	}

	ours.Close()
	if _, err := ours.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Close: %v", err)
	}
	select {
	case <-peerDone:
	case <-ctx.Done():
		t.Error("peer loop did not end")
	}
}

func TestOpenSocketCANFailsClearly(t *testing.T) {
	b, err := OpenSocketCAN("nocan0")
	if err == nil {
		b.Close()
		t.Skip("this machine has a CAN interface named nocan0")
	}
	// Here: no AF_CAN in the kernel; elsewhere: no such interface.
	if !strings.HasPrefix(err.Error(), "socketcan nocan0: ") {
		t.Errorf("error %v", err)
	}
	t.Log(err)
}
