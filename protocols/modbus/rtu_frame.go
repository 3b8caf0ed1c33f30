package modbus

// RTU request framing for the serial server. Plain Go over byte slices, no
// I/O: the reader in rtu_server.go feeds it what arrived since the last
// frame boundary and how long the line has been quiet.
//
// An RTU frame is unit id, function code, data, CRC-16 (low byte first).
// Its end is found from the function code's length rules, as a slave on
// a busy line must (waiting for the 3.5-character silence after every
// frame would add that delay to each answer); the silence is the fallback
// for function codes whose length the rules do not know, and it ends the
// skipping after a corrupt frame.

// Limits of an RTU frame (Modbus over serial line, 2.5.1.1).
const (
	rtuMinFrame = 4   // unit, function code, CRC
	rtuMaxFrame = 256 // unit, 253-byte PDU, CRC
)

// quiet is how long the line has been silent since the last byte.
type quiet int

const (
	// lineBusy: bytes may still be arriving.
	lineBusy quiet = iota
	// lineSilent: at least 3.5 character times: a frame has ended.
	lineSilent
	// lineStalled: so long that a frame whose length rule wants more bytes
	// will not get them (a pty or USB adapter delivers in chunks, so a
	// known-length frame waits this long rather than the bare silence).
	lineStalled
)

// frameStatus is what cutRequest found.
type frameStatus int

const (
	// frameNeedMore: no verdict yet; read more (or wait for quiet).
	frameNeedMore frameStatus = iota
	// frameOK: frame is a whole request with a good CRC.
	frameOK
	// frameBadCRC: the bytes had a frame's length but not its CRC.
	frameBadCRC
	// frameGarbage: bytes that never made a frame: too short or too long
	// before the line went quiet, a byte count no request can carry, or a
	// stall mid-frame.
	frameGarbage

	// After frameBadCRC or frameGarbage the reader skips everything until
	// the line is silent, since it no longer knows where a frame starts.
)

func (s frameStatus) String() string {
	switch s {
	case frameOK:
		return "frame"
	case frameBadCRC:
		return "bad CRC"
	case frameGarbage:
		return "incomplete or overlong frame"
	}
	return "need more"
}

// rtuRequestLen returns the length of the request frame that starts buf,
// CRC included. known is false when the function code has no length rule
// here (then the silence ends the frame); when it has one but buf is too
// short to apply it, n is 0 and known true.
func rtuRequestLen(buf []byte) (n int, known bool) {
	if len(buf) < 2 {
		return 0, true
	}
	switch buf[1] {
	case 1, 2, 3, 4, 5, 6, 8: // address/sub-function + quantity/value
		return 8, true
	case 7, 11, 12, 17: // no data: exception status, comm event counter/log, report server id
		return 4, true
	case 15, 16: // address, quantity, byte count, values
		if len(buf) < 7 {
			return 0, true
		}
		return 9 + int(buf[6]), true
	case 20, 21: // byte count, sub-requests
		if len(buf) < 3 {
			return 0, true
		}
		return 5 + int(buf[2]), true
	case 22: // address, AND mask, OR mask
		return 10, true
	case 23: // read address, quantity, write address, quantity, byte count, values
		if len(buf) < 11 {
			return 0, true
		}
		return 13 + int(buf[10]), true
	case 24: // FIFO address
		return 6, true
	}
	return 0, false
}

// cutRequest looks for one request frame at the start of buf, the bytes
// received since the last boundary, and reports how many bytes it used
// (the frame, or the bytes to discard). It never keeps a reference to buf
// beyond the returned frame, a sub-slice of it.
func cutRequest(buf []byte, q quiet) (frame []byte, used int, st frameStatus) {
	if len(buf) == 0 {
		return nil, 0, frameNeedMore
	}
	n, known := rtuRequestLen(buf)
	switch {
	case n > rtuMaxFrame:
		// A byte count no request can carry: the length byte is corrupt.
		return nil, len(buf), frameGarbage
	case known && n > 0 && n <= len(buf):
		if !crcOK(buf[:n]) {
			return nil, len(buf), frameBadCRC
		}
		return buf[:n], n, frameOK
	case len(buf) > rtuMaxFrame:
		return nil, len(buf), frameGarbage
	case known:
		// Waiting for the rest of a frame of known length (or for its
		// length byte).
		if q >= lineStalled {
			return nil, len(buf), frameGarbage
		}
		return nil, 0, frameNeedMore
	case q >= lineSilent:
		// No length rule: the silence ended the frame.
		if len(buf) < rtuMinFrame {
			return nil, len(buf), frameGarbage
		}
		if !crcOK(buf) {
			return nil, len(buf), frameBadCRC
		}
		return buf, len(buf), frameOK
	}
	return nil, 0, frameNeedMore
}

// appendRTU appends the frame for unit and pdu (function code and data)
// with its CRC.
func appendRTU(dst []byte, unit byte, pdu []byte) []byte {
	start := len(dst)
	dst = append(dst, unit)
	dst = append(dst, pdu...)
	c := crc16(dst[start:])
	return append(dst, byte(c), byte(c>>8))
}

// crcOK checks the frame's trailing CRC.
func crcOK(frame []byte) bool {
	if len(frame) < 3 {
		return false
	}
	n := len(frame) - 2
	c := crc16(frame[:n])
	return frame[n] == byte(c) && frame[n+1] == byte(c>>8)
}

// crc16 is the Modbus CRC (polynomial 0xA001 reflected, initial 0xFFFF).
func crc16(b []byte) uint16 {
	c := uint16(0xFFFF)
	for _, x := range b {
		c ^= uint16(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
	}
	return c
}
