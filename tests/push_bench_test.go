package tests

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/can"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// BenchmarkCANToPlatform measures frames/s from the virtual bus through the
// whole gateway (decode, device actors, Badger journal, uplink) to the
// platform broker's PUBACK (the journal acknowledged), and allocations per frame for the whole
// process. The sender stays at most 500 frames ahead of the device actors:
// a bus does not wait, and the connector's virtual endpoint holds 1024
// frames (an overrun would be counted as dropped, not measured).
//
//	go test -run - -bench CANToPlatform -benchtime 200000x ./tests/
func BenchmarkCANToPlatform(b *testing.B) {
	const devices = 20
	channel := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	ecu := can.NewVirtualBus(channel)
	defer ecu.Close()
	var devs []string
	for d := range devices {
		devs = append(devs, fmt.Sprintf(`{"name": "ecu-%d", "type": "ecu",
      "timeseries": [{"key": "counter", "nodeId": %d, "value": "0:4:little:int"}, {"key": "speed", "nodeId": %d, "value": "4:4:little:float"}]}`, d, 0x100+d, 0x100+d))
	}
	cfg := fmt.Sprintf(`{"name": "CAN", "interface": "virtual", "channel": %q, "devices": [%s]}`, channel, strings.Join(devs, ","))
	platform := testpeer.StartMosquitto(b)
	dir := b.TempDir()
	path := writeConfig(b, dir, platform.Addr(), fmt.Sprintf(`{"type": "file", "data_folder_path": %q, "max_file_count": 1000, "max_records_per_file": 100000}`, dir+"/journal"),
		map[string][]byte{"can": []byte(cfg)})
	g := startGateway(b, path, nil)
	ctr := g.Counters()
	testpeer.Eventually(b, 20*time.Second, "the gateway to connect and announce", func() error {
		if ctr.Reconnects.Load() == 0 {
			return fmt.Errorf("gateway not connected to the platform")
		}
		// The connector announces its devices once its bus is open; frames
		// sent before that would find no listener, as on a real bus.
		if n := ctr.EventsJournaled.Load(); n < devices {
			return fmt.Errorf("%d of %d devices announced", n, devices)
		}
		return nil
	})

	emitted0, journaled0 := ctr.ValuesEmitted.Load(), ctr.EventsJournaled.Load()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	data := make([]byte, 8)
	for i := range b.N {
		for uint64(i)*2 > ctr.ValuesEmitted.Load()-emitted0+1000 {
			time.Sleep(50 * time.Microsecond)
		}
		binary.LittleEndian.PutUint32(data, uint32(i))
		binary.LittleEndian.PutUint32(data[4:], uint32(i%977))
		if err := ecu.Send(can.Frame{ID: uint32(0x100 + i%devices), Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	// Delivered means journaled and acknowledged by the uplink after the
	// platform's PUBACK. (Values of one device and key in the same
	// millisecond share a platform key, so delivered values can be fewer.)
	j := g.Journal()
	deadline := time.Now().Add(time.Minute)
	for ctr.EventsJournaled.Load()-journaled0 < uint64(b.N) || j.Cursor() < j.LastSeq() {
		if time.Now().After(deadline) {
			b.Fatalf("journaled %d of %d frames, acknowledged up to %d of %d (bus drops %d, input dropped %d, malformed %d, unmatched %d, filtered %d, values in %d, emitted %d, events pushed %d, mailbox drops %d)",
				ctr.EventsJournaled.Load()-journaled0, b.N, j.Cursor(), j.LastSeq(), ecu.Dropped(), ctr.InputDropped.Load(), ctr.Malformed.Load(), ctr.Unmatched.Load(), g.ConnectorCounters("can").FilteredEvents.Load(), ctr.ValuesPolled.Load(), ctr.ValuesEmitted.Load(), g.ConnectorCounters("can").EventsPushed.Load(), ctr.MailboxDrops.Load())
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
	if d := ecu.Dropped(); d > 0 {
		b.Logf("virtual bus dropped %d frames", d)
	}
}
