package can

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestVirtualBusThreeEndpoints(t *testing.T) {
	ch := t.Name()
	eps := []*VirtualEndpoint{NewVirtualBus(ch), NewVirtualBus(ch), NewVirtualBus(ch)}
	other := NewVirtualBus(ch + "-other")
	defer other.Close()
	const per = 200
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Add(1)
		go func(i int, e *VirtualEndpoint) {
			defer wg.Done()
			for n := 0; n < per; n++ {
				if err := e.Send(Frame{ID: uint32(i), Data: []byte{byte(n)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}(i, e)
	}
	type result struct{ counts [3][]int }
	results := make([]result, 3)
	var rwg sync.WaitGroup
	for i, e := range eps {
		rwg.Add(1)
		go func(i int, e *VirtualEndpoint) {
			defer rwg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for n := 0; n < 2*per; n++ {
				f, err := e.Recv(ctx)
				if err != nil {
					t.Errorf("endpoint %d after %d frames: %v", i, n, err)
					return
				}
				results[i].counts[f.ID] = append(results[i].counts[f.ID], int(f.Data[0]))
			}
		}(i, e)
	}
	wg.Wait()
	rwg.Wait()
	for i := range eps {
		for from := 0; from < 3; from++ {
			got := results[i].counts[from]
			if from == i {
				if len(got) != 0 {
					t.Errorf("endpoint %d saw %d of its own frames", i, len(got))
				}
				continue
			}
			if len(got) != per {
				t.Errorf("endpoint %d got %d frames from %d, want %d", i, len(got), from, per)
			}
			for n, v := range got {
				if v != n%256 {
					t.Errorf("endpoint %d: frame %d from %d out of order (%d)", i, n, from, v)
					break
				}
			}
		}
		if eps[i].Dropped() != 0 || eps[i].Sent() != per {
			t.Errorf("endpoint %d: dropped %d sent %d", i, eps[i].Dropped(), eps[i].Sent())
		}
	}
	select {
	case f := <-other.C():
		t.Errorf("other channel saw %v", f)
	default:
	}
	for _, e := range eps {
		e.Close()
	}
	virtualChannels.Lock()
	_, left := virtualChannels.m[ch]
	virtualChannels.Unlock()
	if left {
		t.Error("channel not forgotten after the last Close")
	}
}

func TestVirtualBusSlowReaderDrops(t *testing.T) {
	a := NewVirtualBus(t.Name())
	b := NewVirtualBus(t.Name(), WithQueue(4))
	defer a.Close()
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10; i++ {
			if err := a.Send(Frame{ID: 1, Data: []byte{byte(i)}}); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sender blocked by a slow reader")
	}
	if b.Dropped() != 6 || len(b.C()) != 4 {
		t.Errorf("dropped %d queued %d", b.Dropped(), len(b.C()))
	}
	if f := <-b.C(); f.Data[0] != 0 {
		t.Errorf("oldest frame kept first, got %v", f)
	}
}

func TestVirtualBusCopiesAndValidates(t *testing.T) {
	a := NewVirtualBus(t.Name())
	b := NewVirtualBus(t.Name())
	defer b.Close()
	data := []byte{1, 2}
	if err := a.Send(Frame{ID: 5, Data: data}); err != nil {
		t.Fatal(err)
	}
	data[0] = 9
	if f := <-b.C(); f.Data[0] != 1 {
		t.Error("receiver shares the sender's buffer")
	}
	if err := a.Send(Frame{ID: 5, Data: make([]byte, 9)}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("9 bytes classic: %v", err)
	}
	if err := a.Send(Frame{ID: 5, FD: true, Data: make([]byte, 64)}); err != nil {
		t.Errorf("fd 64: %v", err)
	}
	if f := <-b.C(); !f.FD || len(f.Data) != 64 {
		t.Errorf("fd frame: %v", f)
	}
	a.Close()
	a.Close()
	if err := a.Send(Frame{ID: 5}); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	if _, err := a.Recv(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("recv after close: %v", err)
	}
}

// Concurrent open, send and close must not race or panic (run with -race).
func TestVirtualBusConcurrentCloseWhileSending(t *testing.T) {
	ch := t.Name()
	keep := NewVirtualBus(ch)
	defer keep.Close()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				e := NewVirtualBus(ch, WithQueue(2))
				_ = e.Send(Frame{ID: uint32(i), Data: []byte{byte(j)}})
				_ = keep.Send(Frame{ID: 9})
				e.Close()
			}
		}(i)
	}
	wg.Wait()
}

func ExampleNewVirtualBus() {
	gw := NewVirtualBus("example")
	ecu := NewVirtualBus("example")
	defer gw.Close()
	defer ecu.Close()
	_ = ecu.Send(Frame{ID: 0x123, Data: []byte{0xbe, 0xef}})
	fmt.Println(<-gw.C())
	// Output: 0x123[std] be ef
}
