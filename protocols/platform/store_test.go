package platform

import (
	"slices"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// TestLazyStore: packets come back byte-exact when paho resends them, in
// the order they were stored, and deleted ones are gone.
func TestLazyStore(t *testing.T) {
	s := newLazyStore()
	for id := uint16(1); id <= 3; id++ {
		p := &packets.Publish{Topic: "v1/gateway/telemetry", QoS: 1, PacketID: id, Payload: []byte{byte(id)}, Properties: &packets.Properties{}}
		if err := s.Put(id, packets.PUBLISH, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	ids, _ := s.List()
	if !slices.Equal(ids, []uint16{1, 3}) {
		t.Fatalf("ids %v", ids)
	}
	r, err := s.Get(3)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := packets.ReadPacket(r)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := cp.Content.(*packets.Publish)
	if !ok || pub.PacketID != 3 || pub.Topic != "v1/gateway/telemetry" || string(pub.Payload) != "\x03" {
		t.Fatalf("resent packet %+v", cp.Content)
	}
	if _, err := s.Get(2); err == nil {
		t.Error("a deleted packet came back")
	}
	_ = s.Reset()
	if ids, _ := s.List(); len(ids) != 0 {
		t.Errorf("after reset: %v", ids)
	}
}
