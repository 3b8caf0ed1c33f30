package persistence

// The tail: the Badger journal keeps the records of its latest Appends in memory, exactly as
// committed, so that the uplink's Read of what was just written and the Ack that follows its
// PUBACK cost no badger iterator. An iterator snapshots every memtable and table and decodes
// blocks from the table files (there is no block cache); with the uplink reading and acking
// every few milliseconds at the peak, that was most of the journal's read side. Records older
// than the tail (a backlog after an outage or a restart) are read from badger as before.
//
// A tail record's Data aliases the Append's own key/value buffer, which nothing writes once its
// transaction has committed, so holding the tail costs no copy. Only committed records enter
// it, after the commit, so Read still returns only what is on disk.

// tailMaxBytes bounds the Data the tail holds: beyond it the oldest records leave it. At the
// throughput peak the records between an Append and their Ack are a few hundred KB.
const tailMaxBytes = 1 << 20

// tailRec is a record of the tail and whether it is the last of its segment, whose key an Ack
// through it deletes.
type tailRec struct {
	Record
	segEnd bool
}

// tailView is the tail as Read and Ack see it: consecutive seqs, usable only when it ends at
// the journal's last seq and starts at or before from.
type tailView []tailRec

func (t tailView) from(seq, last uint64) (tailView, bool) {
	if len(t) == 0 || t[0].Seq > seq || t[len(t)-1].Seq != last || seq > last {
		return nil, false
	}
	return t[seq-t[0].Seq:], true
}

// read returns what Read returns from the tail: up to maxRecords and about maxBytes, at
// least one. Data is copied, into one buffer: a caller may write to what it got, and the tail
// is shared by every reader.
func (t tailView) read(maxRecords, maxBytes int) []Record {
	n, size := 0, 0
	for _, r := range t {
		if maxRecords > 0 && n >= maxRecords {
			break
		}
		if maxBytes > 0 && n > 0 && size+len(r.Data) > maxBytes {
			break
		}
		n++
		size += len(r.Data)
	}
	out := make([]Record, n)
	buf := make([]byte, 0, size)
	for i, r := range t[:n] {
		off := len(buf)
		buf = append(buf, r.Data...)
		out[i] = Record{Seq: r.Seq, Time: r.Time, Data: buf[off:len(buf):len(buf)]}
	}
	return out
}

// through sums the records through upTo, as scanThrough does from disk: their count and
// bytes, the Time of the first one after upTo (0 if none), and the segments they complete.
func (t tailView) through(upTo uint64) (n, bytes uint64, head int64, dels []uint64) {
	for _, r := range t {
		if r.Seq > upTo {
			return n, bytes, r.Time, dels
		}
		n++
		bytes += uint64(len(r.Data))
		if r.segEnd {
			dels = append(dels, r.Seq)
		}
	}
	return n, bytes, 0, dels
}

// addTail appends the records of a committed Append: first is its first seq, ts their Time,
// data the batch, ends its segments' end indices in it and vals their encoded values, size
// the bytes of its records. Each record's Data is located in its segment value from the
// lengths in data (appendSegValue's layout), not decoded again. The cursor never moves without
// a trimTail, so the tail holds no acknowledged records here. Caller holds wmu and mu.
//
// Readers use a tail slice after unlocking, so nothing here writes below the length of a
// slice already published: the tail is resliced or replaced, and appends go past its end.
func (b *Badger) addTail(first uint64, ts int64, data [][]byte, ends []int, vals [][]byte, size int) {
	if b.opts.noTail {
		return
	}
	if n := len(b.tail); n > 0 && b.tail[n-1].Seq+1 != first {
		b.tail, b.tailBytes = nil, 0 // a failed Append left a gap
	}
	if size > tailMaxBytes {
		b.tail, b.tailBytes = nil, 0
		return
	}
	for b.tailBytes+size > tailMaxBytes {
		b.tailBytes -= len(b.tail[0].Data)
		b.tail = b.tail[1:]
	}
	start := 0
	for i, end := range ends {
		v := vals[i]
		off := timeLen + uvarintLen(uint64(end-start))
		for j := start; j < end; j++ {
			off += uvarintLen(uint64(len(data[j])))
			next := off + len(data[j])
			b.tail = append(b.tail, tailRec{
				Record: Record{Seq: first + uint64(j), Time: ts, Data: v[off:next:next]},
				segEnd: j == end-1,
			})
			off = next
		}
		start = end
	}
	b.tailBytes += size
}

// trimTail drops the records through upTo: acknowledged or dropped. Caller holds wmu and mu.
func (b *Badger) trimTail(upTo uint64) {
	i := 0
	for i < len(b.tail) && b.tail[i].Seq <= upTo {
		b.tailBytes -= len(b.tail[i].Data)
		i++
	}
	b.tail = b.tail[i:]
}
