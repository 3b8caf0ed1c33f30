package protocols

import "github.com/industryos/gateway/protocols/kit/arrays"

// Datapoint slices are the largest allocation of a poll (64 B per value: a
// 100-register device makes 6.4 KB every poll), and at the throughput peak
// they were half of the gateway's allocated bytes and the GC work that
// follows. A driver that hands its readings over (OwnedReadingPoller) takes
// them from MakeDatapoints; the journal gives them back with
// RecycleDatapoints once it has encoded them.
var datapoints arrays.Pool[Datapoint]

// MakeDatapoints returns a zeroed slice of n datapoints, reused when one
// was recycled.
func MakeDatapoints(n int) []Datapoint { return datapoints.Make(n) }

// RecycleDatapoints hands s's array back for MakeDatapoints. The caller
// must hold the only reference to it: nothing may read s, or a slice of
// the same array, afterwards.
func RecycleDatapoints(s []Datapoint) { datapoints.Recycle(s) }
