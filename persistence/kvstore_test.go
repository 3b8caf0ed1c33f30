package persistence

import (
	"bytes"
	"errors"
	"testing"
)

// storeConformance is what both Store implementations must do.
func storeConformance(t *testing.T, open func() Store, reopen func(Store) Store) {
	s := open()
	if _, err := s.Get([]byte("a/1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	for _, k := range []string{"a/2", "a/1", "b/1", "a/3"} {
		if err := s.Put([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete([]byte("a/3")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.Scan([]byte("a/"), func(k, v []byte) error {
		if !bytes.Equal(v, []byte("v"+string(k))) {
			t.Errorf("value of %s = %s", k, v)
		}
		keys = append(keys, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "a/1" || keys[1] != "a/2" {
		t.Fatalf("scan a/ = %v", keys)
	}
	n1, _ := s.NextSeq()
	n2, _ := s.NextSeq()
	if n2 <= n1 || n1 == 0 {
		t.Fatalf("seq %d then %d", n1, n2)
	}
	s = reopen(s)
	defer s.Close()
	if v, err := s.Get([]byte("b/1")); err != nil || string(v) != "vb/1" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	if n3, _ := s.NextSeq(); n3 <= n2 {
		t.Fatalf("seq after reopen %d <= %d", n3, n2)
	}
}

func TestMemoryStore(t *testing.T) {
	storeConformance(t, func() Store { return NewMemoryStore() }, func(s Store) Store { return s })
}

func TestBadgerStore(t *testing.T) {
	dir := t.TempDir()
	open := func() Store {
		s, err := OpenBadgerStore(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storeConformance(t, open, func(s Store) Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return open()
	})
	if !bytes.Equal(SeqKey("q/", 258), []byte("q/\x00\x00\x00\x00\x00\x00\x01\x02")) {
		t.Fatal("SeqKey layout")
	}
}
