package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// Store is a small durable key-value store for records that are not
// events: automation's queued actions and task state. Records are few and
// short-lived (an action lives until its handler succeeds), so every call
// is one transaction and Scan reads a prefix in key order.
type Store interface {
	Put(key, value []byte) error
	Get(key []byte) ([]byte, error) // ErrNotFound when absent
	Delete(key []byte) error
	// Scan calls fn for each record whose key starts with prefix, in key
	// order; fn must not keep its arguments.
	Scan(prefix []byte, fn func(key, value []byte) error) error
	// NextSeq returns a number larger than any it returned before, also
	// across restarts.
	NextSeq() (uint64, error)
	Close() error
}

// ErrNotFound is Store.Get's answer for a missing key.
var ErrNotFound = errors.New("not found")

// MemoryStore is the Store twin for tests and memory-only setups.
type MemoryStore struct {
	mu  sync.Mutex
	m   map[string][]byte
	seq uint64
}

// NewMemoryStore makes an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string][]byte{}} }

func (s *MemoryStore) Put(key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(key)] = bytes.Clone(value)
	return nil
}

func (s *MemoryStore) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (s *MemoryStore) Delete(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(key))
	return nil
}

func (s *MemoryStore) Scan(prefix []byte, fn func(key, value []byte) error) error {
	s.mu.Lock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *MemoryStore) NextSeq() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq, nil
}

func (s *MemoryStore) Close() error { return nil }

// BadgerStore is the durable Store. Writes are not synced by default:
// they survive a killed process (the OS has them), not a power cut,
// like the journal with syncWrites off.
type BadgerStore struct {
	db  *badger.DB
	seq *badger.Sequence
}

var seqKey = []byte("\x00seq")

// OpenBadgerStore opens (or creates) a store in dir.
func OpenBadgerStore(dir string, opts Options) (*BadgerStore, error) {
	o := badgerOptions(dir, opts).WithMemTableSize(4 << 20).WithValueThreshold(1 << 10).WithBaseTableSize(1 << 20)
	db, err := badger.Open(o)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	seq, err := db.GetSequence(seqKey, 100)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store %s: sequence: %w", dir, err)
	}
	return &BadgerStore{db: db, seq: seq}, nil
}

func (s *BadgerStore) Put(key, value []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

func (s *BadgerStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	return out, err
}

func (s *BadgerStore) Delete(key []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) })
}

func (s *BadgerStore) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			if bytes.Equal(item.Key(), seqKey) {
				continue
			}
			if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// NextSeq leases numbers in blocks of 100; a restart skips the rest of a
// block, which keeps them increasing.
func (s *BadgerStore) NextSeq() (uint64, error) {
	n, err := s.seq.Next()
	return n + 1, err
}

func (s *BadgerStore) Close() error {
	err := s.seq.Release()
	return errors.Join(err, s.db.Close())
}

// SeqKey is prefix followed by n big-endian, so keys sort by n.
func SeqKey(prefix string, n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), n)
}

var (
	_ Store = (*MemoryStore)(nil)
	_ Store = (*BadgerStore)(nil)
)
