// Package actorsys makes protoactor actor systems whose process registry
// works on every architecture we ship, 32-bit ARM included. It imports only
// protoactor, so the supervisor and mailbox tests can use it as well.
package actorsys

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	cmap "github.com/orcaman/concurrent-map"
)

// Configure shrinks protoactor's process registry; call it once at start-up,
// before any actor system exists (actors.Start does). New calls it too, so an
// actor system made here never has the large registry, whoever made it.
//
// protoactor's process registry is 1024 buckets, each a concurrent map of
// cmap.SHARD_COUNT (32) locked shards: 32 768 maps and 4.6 MB of heap per
// actor system, for a registry touched only when an actor is spawned or
// stopped, a future is made, or a PID is first resolved. The count is a
// package variable of concurrent-map read when a map is made, so it is set
// before the first actor system; nothing else in the binary uses
// concurrent-map. It is an explicit call rather than an init so that merely
// importing this package changes no other package's global. Safe to call
// more than once and from several goroutines: only the first call writes.
func Configure() { configureOnce.Do(func() { cmap.SHARD_COUNT = 1 }) }

var configureOnce sync.Once

// New is actor.NewActorSystem with a registry of one bucket.
//
// protoactor picks a bucket with int(murmur3(id)) % 1024. Where int is 32
// bits (armv7, armv6, 386) the uint32 hash turns negative for about half of
// the process ids, the index is negative and the first such Spawn panics
// ("index out of range [-327]" in SliceMap.GetBucket; protoactor-go #755,
// open). The bucket count is fixed and not configurable, but the registry's
// fields are exported: with one bucket the index is x % 1 == 0 for every x,
// negative or not. Every architecture gets the same registry, so the path
// the 32-bit boxes take is the one CI tests on amd64 too. The registry is
// off the message path (a PID caches its process after the first lookup),
// so one locked map costs nothing measurable at our spawn and future rates.
//
// NewActorSystem has already registered its own processes (dead letters,
// event stream); they are carried over into the single bucket before
// anything else can see the system.
func New(opts ...actor.ConfigOption) *actor.ActorSystem {
	Configure()
	sys := actor.NewActorSystem(opts...)
	one := cmap.New()
	for _, bucket := range sys.ProcessRegistry.LocalPIDs.LocalPIDs {
		for item := range bucket.IterBuffered() {
			one.Set(item.Key, item.Val)
		}
	}
	sys.ProcessRegistry.LocalPIDs = &actor.SliceMap{LocalPIDs: []cmap.ConcurrentMap{one}}
	return sys
}
