package actorsys

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestRegistryOneBucket: the registry is one bucket of one shard, and the
// processes NewActorSystem registered itself are still found.
func TestRegistryOneBucket(t *testing.T) {
	sys := New()
	buckets := sys.ProcessRegistry.LocalPIDs.LocalPIDs
	if len(buckets) != 1 || len(buckets[0]) != 1 {
		t.Fatalf("registry has %d buckets of %d shards, want 1 of 1", len(buckets), len(buckets[0]))
	}
	for _, id := range []string{"eventstream", "deadletter"} {
		if _, ok := sys.ProcessRegistry.GetLocal(id); !ok {
			t.Errorf("%s lost from the registry", id)
		}
	}
}

// TestManySpawns: enough named and unnamed actors that, with 32-bit int and
// protoactor's 1024 buckets, some id would hash to a negative index (run with
// GOARCH=386 or under qemu-arm); every one must answer.
func TestManySpawns(t *testing.T) {
	sys := New()
	defer sys.Shutdown()
	props := actor.PropsFromFunc(func(c actor.Context) {
		if s, ok := c.Message().(string); ok {
			c.Respond(s)
		}
	})
	for i := 0; i < 200; i++ {
		pid := sys.Root.Spawn(props)
		named, err := sys.Root.SpawnNamed(props, fmt.Sprintf("dev-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*actor.PID{pid, named} {
			res, err := sys.Root.RequestFuture(p, "ping", 5*time.Second).Result()
			if err != nil || res != "ping" {
				t.Fatalf("%s: %v %v", p.Id, res, err)
			}
		}
		sys.Root.Stop(pid)
	}
}
