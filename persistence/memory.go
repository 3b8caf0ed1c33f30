package persistence

import (
	"sync"
	"time"
)

// Memory is a volatile Journal: same semantics as Badger, but everything is lost on Close or
// process exit and sequence numbers restart at 1 on every open.
type Memory struct {
	opts Options
	now  func() time.Time

	mu     sync.RWMutex
	q      []memRecord // q[head:] are the held records, oldest first, seqs contiguous
	head   int
	l      ledger
	dl     dropLog
	closed bool
}

type memRecord struct {
	seq  uint64
	time int64
	data []byte // never written after append, so readers may copy from it without a lock on the slice
}

var (
	_ Journal  = (*Memory)(nil)
	_ Enforcer = (*Memory)(nil)
)

// OpenMemory returns an empty volatile journal.
func OpenMemory(opts Options) *Memory {
	return &Memory{opts: opts, now: opts.clock(), dl: dropLog{log: opts.Logger}}
}

// Append copies data (the caller may reuse its buffers afterwards) and enforces the bounds.
func (m *Memory) Append(data [][]byte) (first, last uint64, err error) {
	if len(data) == 0 {
		return 0, 0, nil
	}
	// One allocation per batch instead of one per record; FIFO acks free it as a whole once
	// its last record is gone.
	total := 0
	for _, d := range data {
		total += len(d)
	}
	buf := make([]byte, 0, total)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, 0, ErrClosed
	}
	now := m.now()
	ts := now.UnixNano()
	first = m.l.last + 1
	for i, d := range data {
		off := len(buf)
		buf = append(buf, d...)
		m.q = append(m.q, memRecord{seq: first + uint64(i), time: ts, data: buf[off:len(buf):len(buf)]})
	}
	last = first + uint64(len(data)) - 1
	m.l.last = last
	m.l.added(uint64(len(data)), uint64(total), ts)
	m.enforceLocked(now)
	return first, last, nil
}

// Read copies the selected records into one fresh buffer so callers can keep or modify them.
func (m *Memory) Read(after uint64, maxRecords, maxBytes int) ([]Record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if after < m.l.cursor {
		after = m.l.cursor
	}
	if after >= m.l.last {
		return nil, nil
	}
	start := m.head + int(after-m.l.cursor)
	n, size := 0, 0
	for i := start; i < len(m.q); i++ {
		if maxRecords > 0 && n >= maxRecords {
			break
		}
		d := len(m.q[i].data)
		if maxBytes > 0 && n > 0 && size+d > maxBytes {
			break
		}
		n++
		size += d
	}
	out := make([]Record, n)
	buf := make([]byte, 0, size)
	for i := range out {
		r := m.q[start+i]
		off := len(buf)
		buf = append(buf, r.data...)
		out[i] = Record{Seq: r.seq, Time: r.time, Data: buf[off:len(buf):len(buf)]}
	}
	return out, nil
}

// Ack removes records up to upTo.
func (m *Memory) Ack(upTo uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	upTo = min(upTo, m.l.last)
	if upTo <= m.l.cursor {
		return nil
	}
	n, bytes := m.pop(upTo)
	m.l.removed(upTo, n, bytes, m.headTime())
	m.l.acked += n
	return nil
}

// pop removes held records through upTo and returns how many and how many bytes.
func (m *Memory) pop(upTo uint64) (n, bytes uint64) {
	n = upTo - m.l.cursor
	end := m.head + int(n)
	for i := m.head; i < end; i++ {
		bytes += uint64(len(m.q[i].data))
		m.q[i] = memRecord{} // release the batch buffer reference
	}
	m.head = end
	// Shift only once the dead prefix is at least half the slice, so compaction costs O(1)
	// amortised per record and the backing array never grows without bound.
	if m.head > 0 && m.head*2 >= len(m.q) {
		live := len(m.q) - m.head
		if cap(m.q) > 1024 && live*4 < cap(m.q) {
			// After a burst drained, give the big backing array back to the GC.
			m.q = append(make([]memRecord, 0, 2*live), m.q[m.head:]...)
		} else {
			copy(m.q, m.q[m.head:])
			clear(m.q[live:])
			m.q = m.q[:live]
		}
		m.head = 0
	}
	return n, bytes
}

func (m *Memory) headTime() int64 {
	if m.head < len(m.q) {
		return m.q[m.head].time
	}
	return 0
}

// Enforce applies the bounds now; the owner calls it periodically so that the age bound also
// holds while nothing is appended.
func (m *Memory) Enforce() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := m.now()
	m.enforceLocked(now)
	m.dl.flush(&m.l, now, false)
	return nil
}

func (m *Memory) enforceLocked(now time.Time) {
	if !overBounds(&m.l, m.opts.Limits, now) {
		return
	}
	i := m.head
	p, _ := planDrops(&m.l, m.opts.Limits, now, func() (held, bool, error) {
		if i >= len(m.q) {
			return held{}, false, nil
		}
		r := m.q[i]
		i++
		return held{seq: r.seq, time: r.time, size: uint64(len(r.data))}, true, nil
	})
	if p.n == 0 {
		return
	}
	m.pop(p.upTo)
	m.l.applyDrops(p)
	m.dl.note(p, &m.l, now)
}

// Cursor returns the last acknowledged or dropped seq.
func (m *Memory) Cursor() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.l.cursor
}

// LastSeq returns the last appended seq.
func (m *Memory) LastSeq() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.l.last
}

// Stats returns a snapshot; DiskBytes is always 0.
func (m *Memory) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.l.stats(m.now())
}

// Close releases the records. It is idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.dl.flush(&m.l, m.now(), true)
	m.q, m.head = nil, 0
	return nil
}
