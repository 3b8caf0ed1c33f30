package persistence

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"
)

// Segments: the records of one Append are stored as a few badger keys instead of one key per
// record, because at tens of thousands of records per second the per-key cost (skiplist insert,
// WAL entry, tombstone on ack, compaction) dominated the journal's CPU.
//
// A segment holds consecutive seqs that share one Time (every record of an Append gets the same
// Time). Its key is segPrefix + the big-endian seq of its LAST record, so that a forward seek to
// segKey(s) lands directly on the segment holding s (or on the first segment after s when s
// was never written): the journal never needs a reverse seek, which in badger would also crawl
// over the tombstones of acknowledged segments.
//
// Value: 8-byte big-endian Time, uvarint record count n, then n times (uvarint length, bytes).
// The first seq is last-n+1. Since layout 3 the top bit of the Time (segPacked) may say that
// everything after it is one s2 block holding the count and the records.
var segPrefix = []byte("s/")

const (
	segKeyLen = 2 + 8

	// segMaxBytes bounds the encoded records of one segment (a single bigger record gets its own
	// segment). Reading any record of a segment decodes its value, so segments stay small; but
	// big enough that a group commit of a few hundred events is one or two keys.
	segMaxBytes = 32 << 10
	// segMaxRecords bounds the records of one segment so that converting an old journal can
	// always write a segment and delete its per-record keys in one transaction, and so that
	// skipping the acknowledged prefix of a segment stays cheap.
	segMaxRecords = 1024
)

func appendSegKey(dst []byte, last uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, segPrefix...), last)
}

func segKey(last uint64) []byte { return appendSegKey(make([]byte, 0, segKeyLen), last) }

// CorruptSegmentError is a segment the decoder rejects: its key or value does not have the
// segment format. It is told apart from badger's own (I/O) errors because the journal skips
// such a segment, counting its records as dropped, instead of stopping at it forever.
type CorruptSegmentError struct{ msg string }

func (e *CorruptSegmentError) Error() string { return e.msg }

// segKeySeq returns the last seq of a segment key.
func segKeySeq(k []byte) (uint64, error) {
	if len(k) != segKeyLen {
		return 0, &CorruptSegmentError{fmt.Sprintf("persistence: segment key %q corrupt: %d bytes", k, len(k))}
	}
	return binary.BigEndian.Uint64(k[len(segPrefix):]), nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// encodedLen is the size of one record inside a segment value.
func encodedLen(d []byte) int { return uvarintLen(uint64(len(d))) + len(d) }

// segmentEnd returns the end (exclusive) of the segment that starts at data[start], and the
// size of its encoded records.
func segmentEnd(data [][]byte, start int) (end, recBytes int) {
	end = start
	for end < len(data) {
		n := encodedLen(data[end])
		if end > start && (end-start >= segMaxRecords || recBytes+n > segMaxBytes) {
			break
		}
		recBytes += n
		end++
	}
	return end, recBytes
}

// segValueLen is the exact size of a segment value holding n records of recBytes.
func segValueLen(n, recBytes int) int { return timeLen + uvarintLen(uint64(n)) + recBytes }

// Segments are stored compressed (layout 3) because the journal's bytes are written three
// times before the uplink's ack deletes them (write-ahead log, L0 table, sync of each), and at
// the peak that writing, not the encoding, was a quarter of the MQTT path's CPU; records of
// one device model repeat names, keys and value bytes, so s2 stores them 1.4 to 3.5 times
// smaller (random doubles to one-decimal readings) at a small fraction of that cost. Fewer
// bytes written is also less wear on the SD and eMMC cards of edge boxes.
const (
	// segPacked is the top bit of a stored segment's Time. Times are Unix nanoseconds,
	// positive until 2262, so no plain value (nor any layout-2 value) has it.
	segPacked = uint64(1) << 63
	// segPackMin and segPackMax bound the bodies (count and records) worth compressing. Below
	// the minimum s2 finds too little; above the maximum is a single big record, stored plain
	// so that decoding never has to trust a stored length bigger than a segment.
	segPackMin = 128
	segPackMax = binary.MaxVarintLen64 + segMaxBytes
)

// packSegValue returns the value to store for the plain segment value v, and scratch grown by
// what it used: v itself, or v's Time flagged with segPacked and its body as one s2 block,
// written into scratch, when that saves at least an eighth.
func packSegValue(scratch, v []byte) (stored, grown []byte) {
	body := v[timeLen:]
	if len(body) < segPackMin || len(body) > segPackMax {
		return v, scratch
	}
	off := len(scratch)
	scratch = binary.BigEndian.AppendUint64(scratch, binary.BigEndian.Uint64(v)|segPacked)
	need := s2.MaxEncodedLen(len(body))
	scratch = slices.Grow(scratch, need)
	enc := s2.Encode(scratch[len(scratch):len(scratch)+need], body)
	if len(enc) > len(body)-len(body)/8 {
		return v, scratch[:off]
	}
	scratch = scratch[:len(scratch)+len(enc)]
	return scratch[off:len(scratch):len(scratch)], scratch
}

func appendSegValue(dst []byte, ts int64, recs [][]byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for _, d := range recs {
		dst = binary.AppendUvarint(dst, uint64(len(d)))
		dst = append(dst, d...)
	}
	return dst
}

// segment decodes one segment value record by record. The returned Data aliases the value.
type segment struct {
	last  uint64
	first uint64
	ts    int64
	seq   uint64 // seq of the next record
	rest  []byte // encoded records not yet decoded
}

func segCorrupt(last uint64, format string, args ...any) error {
	return &CorruptSegmentError{fmt.Sprintf("persistence: segment s/%d (key %x) corrupt: %s", last, segKey(last), fmt.Sprintf(format, args...))}
}

// decodeSegment decodes a stored segment value, plain or packed. The records alias v, or for a
// packed value a fresh buffer.
func decodeSegment(last uint64, v []byte) (segment, error) {
	if len(v) < timeLen+1 {
		return segment{}, segCorrupt(last, "value of %d bytes", len(v))
	}
	ts := binary.BigEndian.Uint64(v)
	body := v[timeLen:]
	if ts&segPacked != 0 {
		ts &^= segPacked
		n, err := s2.DecodedLen(body)
		if err != nil {
			return segment{}, segCorrupt(last, "compressed body: %v", err)
		}
		if n > segPackMax {
			return segment{}, segCorrupt(last, "compressed body of %d bytes, more than a segment holds", n)
		}
		if body, err = s2.Decode(make([]byte, n), body); err != nil {
			return segment{}, segCorrupt(last, "compressed body: %v", err)
		}
	}
	n, k := binary.Uvarint(body)
	if k <= 0 {
		return segment{}, segCorrupt(last, "bad record count")
	}
	rest := body[k:]
	// Every record takes at least its one-byte length; this also rejects absurd counts early.
	if n == 0 || n > last || n > uint64(len(rest)) {
		return segment{}, segCorrupt(last, "record count %d with %d bytes of records", n, len(rest))
	}
	first := last - n + 1
	return segment{
		last:  last,
		first: first,
		ts:    int64(ts),
		seq:   first,
		rest:  rest,
	}, nil
}

// next returns the next record, or ok=false after the last one.
func (s *segment) next() (seq uint64, data []byte, ok bool, err error) {
	if s.seq > s.last || s.seq < s.first { // the second test catches a wrapped seq
		if len(s.rest) != 0 {
			return 0, nil, false, segCorrupt(s.last, "%d trailing bytes after record %d", len(s.rest), s.last)
		}
		return 0, nil, false, nil
	}
	l, k := binary.Uvarint(s.rest)
	if k <= 0 {
		return 0, nil, false, segCorrupt(s.last, "record %d: bad length", s.seq)
	}
	if l > uint64(len(s.rest)-k) {
		return 0, nil, false, segCorrupt(s.last, "record %d: length %d exceeds the %d bytes left", s.seq, l, len(s.rest)-k)
	}
	end := k + int(l)
	data = s.rest[k:end:end]
	s.rest = s.rest[end:]
	seq = s.seq
	s.seq++
	return seq, data, true, nil
}
