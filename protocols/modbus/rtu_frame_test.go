package modbus

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRC16(t *testing.T) {
	// The specification's example: read 10 holding registers of unit 1.
	if got := appendRTU(nil, 1, unhex(t, "030000000a")); !bytes.Equal(got, unhex(t, "01030000000ac5cd")) {
		t.Fatalf("frame % x, want 01 03 00 00 00 0a c5 cd", got)
	}
	if !crcOK(unhex(t, "01030000000ac5cd")) || crcOK(unhex(t, "01030000000ac5ce")) || crcOK([]byte{1, 2}) {
		t.Fatal("crcOK")
	}
}

func TestCutRequest(t *testing.T) {
	read := appendRTU(nil, 1, unhex(t, "030000000a"))
	write := appendRTU(nil, 1, unhex(t, "10000a0002041234abcd"))
	diag := appendRTU(nil, 1, unhex(t, "2b0e0100")) // FC 43: no length rule
	bad := append([]byte(nil), read...)
	bad[len(bad)-1] ^= 0xff
	badDiag := append([]byte(nil), diag...)
	badDiag[len(badDiag)-1] ^= 0xff
	cases := []struct {
		name  string
		buf   []byte
		q     quiet
		frame []byte
		used  int
		st    frameStatus
	}{
		{"empty", nil, lineStalled, nil, 0, frameNeedMore},
		{"read", read, lineBusy, read, 8, frameOK},
		{"read then the next", append(append([]byte(nil), read...), write[:3]...), lineBusy, read, 8, frameOK},
		{"partial read", read[:5], lineBusy, nil, 0, frameNeedMore},
		{"partial read, silent", read[:5], lineSilent, nil, 0, frameNeedMore},
		{"partial read, stalled", read[:5], lineStalled, nil, 5, frameGarbage},
		{"write without byte count yet", write[:6], lineBusy, nil, 0, frameNeedMore},
		{"write", write, lineBusy, write, len(write), frameOK},
		{"bad crc", bad, lineBusy, nil, 8, frameBadCRC},
		{"bad crc with more", append(append([]byte(nil), bad...), 1, 2), lineBusy, nil, 10, frameBadCRC},
		{"byte count too big", unhex(t, "011000000001ff"), lineBusy, nil, 7, frameGarbage},
		{"unknown fc, busy", diag, lineBusy, nil, 0, frameNeedMore},
		{"unknown fc, silent", diag, lineSilent, diag, len(diag), frameOK},
		{"unknown fc, bad crc", badDiag, lineSilent, nil, len(diag), frameBadCRC},
		{"too short at silence", []byte{1, 0x2b, 3}, lineSilent, nil, 3, frameGarbage},
		{"overlong", append([]byte{1, 0x2b}, make([]byte, 300)...), lineBusy, nil, 302, frameGarbage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame, used, st := cutRequest(tc.buf, tc.q)
			if st != tc.st || used != tc.used || !bytes.Equal(frame, tc.frame) {
				t.Fatalf("got % x, %d, %s; want % x, %d, %s", frame, used, st, tc.frame, tc.used, tc.st)
			}
		})
	}
}

// FuzzRTUFrame feeds a byte stream to the framer in chunks of the given
// sizes, marking some pauses as silences, the way the serial server does,
// and answers every frame from a store. It must never panic, never use
// more bytes than it has, make progress on every verdict, hand out only
// frames with a good CRC within the RTU size limits, and answer each with a
// PDU of the request's function code (or its exception) that fits a frame.
func FuzzRTUFrame(f *testing.F) {
	f.Add(appendRTU(appendRTU(nil, 1, []byte{3, 0, 0, 0, 10}), 1, []byte{16, 0, 10, 0, 2, 4, 1, 2, 3, 4}), []byte{3, 5, 200})
	f.Add(appendRTU(nil, 1, []byte{15, 0, 3, 0, 10, 2, 0xff, 3}), []byte{1})
	f.Add(appendRTU(nil, 0, []byte{6, 0, 1, 0, 7}), []byte{0})
	f.Add(appendRTU(nil, 1, []byte{0x2b, 14, 1, 0}), []byte{2, 0})
	f.Add([]byte{1, 3, 0, 0, 0, 10, 0, 0, 1, 1, 1}, []byte{4, 0, 4})
	f.Add(appendRTU(nil, 1, []byte{1, 0xff, 0xff, 0, 2}), []byte{8})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		store := NewStore(nil)
		var buf []byte
		feed := func(q quiet) {
			for len(buf) > 0 {
				frame, used, st := cutRequest(buf, q)
				if used < 0 || used > len(buf) {
					t.Fatalf("used %d of %d bytes", used, len(buf))
				}
				if st == frameNeedMore {
					if used != 0 {
						t.Fatalf("need more but used %d", used)
					}
					if q == lineStalled {
						t.Fatalf("need more after a stall: % x", buf)
					}
					return
				}
				if used == 0 {
					t.Fatalf("verdict %s without progress", st)
				}
				if st == frameOK {
					if len(frame) < rtuMinFrame || len(frame) > rtuMaxFrame || !crcOK(frame) || len(frame) != used {
						t.Fatalf("bad frame % x (used %d)", frame, used)
					}
					pdu := frame[1 : len(frame)-2]
					resp := servePDU(store, "fuzz", frame[0], pdu)
					if len(resp) < 2 || len(resp) > 253 || resp[0]&0x7f != pdu[0]&0x7f {
						t.Fatalf("request % x answered % x", pdu, resp)
					}
				}
				buf = buf[used:]
			}
		}
		for i := 0; len(stream) > 0; i++ {
			n, q := len(stream), lineStalled
			if i < len(cuts) {
				n = min(n, int(cuts[i]&0x7f)+1)
				q = quiet(cuts[i] >> 7) // busy or silent
			}
			buf = append(buf, stream[:n]...)
			stream = stream[n:]
			feed(q)
		}
		feed(lineStalled)
		if len(buf) != 0 {
			t.Fatalf("%d bytes left after a stall", len(buf))
		}
	})
}
