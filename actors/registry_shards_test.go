package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// TestRegistryShards: the setting reaches protoactor's process registry.
func TestRegistryShards(t *testing.T) {
	sys := actor.NewActorSystem()
	if n := len(sys.ProcessRegistry.LocalPIDs.LocalPIDs[0]); n != 1 {
		t.Fatalf("registry bucket has %d shards, want 1", n)
	}
}
