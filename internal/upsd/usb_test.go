package upsd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"gate/internal/hidups"
	"gate/internal/nut"
)

// fakeUPS is the smallest HID power device: report 1 holds
// PowerSummary.RemainingCapacity (8 bits), PresentStatus.ACPresent (1 bit)
// and padding;
// report 2 DelayBeforeShutdown and DelayBeforeStartup (16 bits, signed).
type fakeUPS struct {
	mu      sync.Mutex
	reports map[uint8][]byte
	writes  []string
	fail    error
}

var fakeDescriptor = []byte{
	0x05, 0x84, // Usage Page (Power Device)
	0x09, 0x04, // Usage (UPS)
	0xa1, 0x01, // Collection (Application)
	0x09, 0x24, //   Usage (PowerSummary)
	0xa1, 0x00, //   Collection (Physical)
	0x85, 0x01, //     Report ID 1
	0x05, 0x85, //     Usage Page (Battery System)
	0x09, 0x66, //     Usage (RemainingCapacity)
	0x75, 0x08, 0x95, 0x01, 0x15, 0x00, 0x26, 0xff, 0x00, // size 8, count 1, 0..255
	0xb1, 0x02, //     Feature (Data, Var, Abs)
	0x05, 0x84, //     Usage Page (Power Device)
	0x09, 0x02, //     Usage (PresentStatus)
	0xa1, 0x02, //     Collection (Logical)
	0x05, 0x85, //       Usage Page (Battery System)
	0x09, 0xd0, //       Usage (ACPresent)
	0x75, 0x01, 0x25, 0x01, // size 1, 0..1
	0xb1, 0x02, //       Feature
	0x75, 0x07, 0xb1, 0x03, // padding
	0xc0,       //     End Collection
	0x85, 0x02, //     Report ID 2
	0x05, 0x84, //     Usage Page (Power Device)
	0x09, 0x57, //     Usage (DelayBeforeShutdown)
	0x75, 0x10, 0x16, 0x00, 0x80, 0x26, 0xff, 0x7f, // size 16, -32768..32767
	0xb1, 0x02, //     Feature
	0x09, 0x56, //     Usage (DelayBeforeStartup)
	0xb1, 0x02, //     Feature
	0xc0, //   End Collection
	0xc0, // End Collection
}

func (f *fakeUPS) ReportDescriptor() ([]byte, error) { return fakeDescriptor, nil }
func (f *fakeUPS) GetFeature(id uint8, buf []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	r, ok := f.reports[id]
	if !ok {
		return 0, fmt.Errorf("no report %d", id)
	}
	return copy(buf, r), nil
}
func (f *fakeUPS) SetFeature(buf []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports[buf[0]] = append([]byte{}, buf...)
	f.writes = append(f.writes, fmt.Sprintf("% x", buf))
	return nil
}
func (f *fakeUPS) ReadInput(ctx context.Context, buf []byte) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestUSBSource(t *testing.T) {
	f := &fakeUPS{reports: map[uint8][]byte{1: {1, 80, 1}, 2: {2, 0xff, 0xff, 0xff, 0xff}}}
	opens := 0
	s := &USBSource{Open: func() (hidups.Device, error) { opens++; return f, nil }}
	ctx := context.Background()
	r, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Vars["battery.charge"] != "80" || r.Vars["ups.status"] != "OL" {
		t.Errorf("vars %v", r.Vars)
	}
	if !r.Writable["ups.delay.shutdown"] || !r.Writable["ups.delay.start"] {
		t.Errorf("writable %v", r.Writable)
	}
	if r.Commands["shutdown.return"] != "Turn off the load and return when power is back" {
		t.Errorf("commands %v", r.Commands)
	}
	// Typed as NUT's upsd types usbhid-ups's variables.
	if r.Types["ups.delay.shutdown"] != "RW STRING:10" || r.Types["battery.charge"] != "NUMBER" || r.Types["ups.status"] != "NUMBER" {
		t.Errorf("types %v", r.Types)
	}
	// On battery.
	f.mu.Lock()
	f.reports[1] = []byte{1, 40, 0}
	f.mu.Unlock()
	if r, _ := s.Read(ctx); r.Vars["ups.status"] != "OB" {
		t.Errorf("on battery: ups.status %q", r.Vars["ups.status"])
	}
	// The plan's UPSOff: delays, then shutdown.return (start first).
	if err := s.SetVar(ctx, "ups.delay.shutdown", "25"); err != nil {
		t.Fatal(err)
	}
	if err := s.InstCmd(ctx, "shutdown.return", ""); err != nil {
		t.Fatal(err)
	}
	if len(f.writes) != 2 || f.writes[0] != "02 ff ff 1e 00" || f.writes[1] != "02 19 00 1e 00" {
		t.Errorf("writes %q, want the start delay (30) then the shutdown delay (25)", f.writes)
	}
	// A read error drops the device; the next read opens it again.
	f.mu.Lock()
	f.fail = fmt.Errorf("EIO")
	f.mu.Unlock()
	if _, err := s.Read(ctx); err == nil {
		t.Error("no error from a failing device")
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	if _, err := s.Read(ctx); err != nil || opens != 2 {
		t.Errorf("after the error: %v, %d opens", err, opens)
	}
	// Refusals carry NUT's word for them.
	var ne *nut.Error
	for _, tc := range []struct {
		err  error
		word string
	}{
		{s.InstCmd(ctx, "beeper.enable", ""), "CMD-NOT-SUPPORTED"},
		{s.InstCmd(ctx, "load.off.delay", "30"), "INVALID-ARGUMENT"},
		{s.SetVar(ctx, "battery.charge", "50"), "READONLY"},
		{s.SetVar(ctx, "ups.delay.start", "soon"), "INVALID-VALUE"},
		{s.SetVar(ctx, "ups.nothing", "1"), "VAR-NOT-SUPPORTED"},
	} {
		if !errors.As(tc.err, &ne) || ne.Word != tc.word {
			t.Errorf("%v: want ERR %s", tc.err, tc.word)
		}
	}
}
