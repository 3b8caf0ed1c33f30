package platform

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
)

// lazyStore is the client side of paho's session store without paho's copy
// of every QoS 1 publish: it keeps the packet itself and serialises it only
// when paho resends after a reconnect. The uplink publishes tens of
// thousands of multi-kilobyte messages a second, and the in-memory store's
// copy of each was a quarter of the gateway's allocations. Safe because a
// published payload is never modified (the uplink packs every journal read
// into fresh buffers).
type lazyStore struct {
	mu    sync.Mutex
	order []uint16
	m     map[uint16]io.WriterTo
}

func newLazyStore() *lazyStore { return &lazyStore{m: map[uint16]io.WriterTo{}} }

func (s *lazyStore) Put(id uint16, _ byte, w io.WriterTo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		s.order = slices.DeleteFunc(s.order, func(x uint16) bool { return x == id })
	}
	s.m[id] = w
	s.order = append(s.order, id)
	return nil
}

func (s *lazyStore) Get(id uint16) (io.ReadCloser, error) {
	s.mu.Lock()
	w, ok := s.m[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("platform session store: no packet %d", id)
	}
	var b bytes.Buffer
	if _, err := w.WriteTo(&b); err != nil {
		return nil, err
	}
	return io.NopCloser(&b), nil
}

func (s *lazyStore) Delete(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return nil
	}
	delete(s.m, id)
	s.order = slices.DeleteFunc(s.order, func(x uint16) bool { return x == id })
	return nil
}

// Quarantine drops a packet paho could not parse; the journal still has
// its data and re-sends it.
func (s *lazyStore) Quarantine(id uint16) error { return s.Delete(id) }

func (s *lazyStore) List() ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order), nil
}

func (s *lazyStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.m)
	s.order = s.order[:0]
	return nil
}
