package modbus

import (
	"fmt"
	"slices"
	"sync"
)

// keyTables lets the slaves of one file share their keys, key lists and
// read plans. A site's slaves are mostly a few device models, each entry
// listing the same registers, and every slave holding its own copy was
// most of the connector's heap: 2.5 KB a slave of 10 registers against
// 0.25 KB shared (BenchmarkSlaveHeap), 2.3 MB at 1000 slaves. Nothing
// changes a key or a plan after Parse.
type keyTables struct {
	// keys are matched by their %#v text, which prints every field (maps
	// sorted) and pointers by address: only keys that are the same value
	// match, and a key holding an error (an unusable rpc entry) is never
	// shared.
	keys  map[string]*KeyConfig
	lists map[string]sharedList
	plans map[[2]int]*sharedPlan
	text  []byte
}

type sharedList struct {
	keys []*KeyConfig
	id   int
}

// sharedPlan is the read plan of the slaves whose attributes and
// timeseries are the same lists; the first device built makes it.
type sharedPlan struct {
	once sync.Once
	reqs []request
}

func newKeyTables() *keyTables {
	return &keyTables{keys: map[string]*KeyConfig{}, lists: map[string]sharedList{}, plans: map[[2]int]*sharedPlan{}}
}

// share points s at the keys, lists and plan an earlier slave with the
// same ones holds.
func (t *keyTables) share(s *SlaveConfig) {
	var attrs, ts int
	s.Attributes, attrs = t.list(s.Attributes)
	s.Timeseries, ts = t.list(s.Timeseries)
	s.AttributeUpdates, _ = t.list(s.AttributeUpdates)
	s.RPC, _ = t.list(s.RPC)
	id := [2]int{attrs, ts}
	p := t.plans[id]
	if p == nil {
		p = &sharedPlan{}
		t.plans[id] = p
	}
	s.reads = p
}

// list returns the shared list equal to ks and its id (0 for none).
func (t *keyTables) list(ks []*KeyConfig) ([]*KeyConfig, int) {
	if len(ks) == 0 {
		return nil, 0
	}
	var sig []byte
	for i, k := range ks {
		t.text = fmt.Appendf(t.text[:0], "%#v", *k)
		shared, ok := t.keys[string(t.text)]
		if !ok {
			shared = k
			t.keys[string(t.text)] = k
		}
		ks[i] = shared
		// The shared key's address stands for it: equal lists hold the
		// same pointers.
		sig = fmt.Appendf(sig, "%p,", shared)
	}
	if l, ok := t.lists[string(sig)]; ok {
		return l.keys, l.id
	}
	l := sharedList{keys: slices.Clip(ks), id: len(t.lists) + 1}
	t.lists[string(sig)] = l
	return l.keys, l.id
}

// plan is the slave's read plan, shared with the slaves of the same keys
// when Parse made it.
func (s *SlaveConfig) plan() []request {
	if s.reads == nil {
		return buildPlan(s)
	}
	s.reads.once.Do(func() { s.reads.reqs = buildPlan(s) })
	return s.reads.reqs
}
