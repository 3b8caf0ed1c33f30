package actors

import cmap "github.com/orcaman/concurrent-map"

// protoactor's process registry is 1024 buckets, each a concurrent map of
// cmap.SHARD_COUNT (32) locked shards: 32 768 maps and 4.6 MB of heap per
// actor system, for a registry touched only when an actor is spawned, stopped
// or looked up by name. Its 1024 buckets spread contention on their own. The
// count is read when a map is made, so it is set before any actor system
// exists; nothing else in the binary uses concurrent-map.
func init() { cmap.SHARD_COUNT = 1 }
