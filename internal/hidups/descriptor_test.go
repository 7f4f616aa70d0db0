package hidups

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestParseDescriptorItems(t *testing.T) {
	desc := []byte{
		0x05, 0x84, // usage page power device
		0x09, 0x04, 0xa1, 0x01, // UPS, application
		0x09, 0x24, 0xa1, 0x00, // PowerSummary, physical
		0x85, 0x01, // report ID 1
		0x05, 0x85, 0x09, 0x66, // RemainingCapacity
		0x75, 0x08, 0x95, 0x01, 0x15, 0x00, 0x25, 0x64,
		0xb1, 0x02, // feature var
		0xa4,       // push
		0x09, 0x68, // RunTimeToEmpty
		0x75, 0x20, 0x17, 0xff, 0xff, 0xff, 0xff, // logmin -1 (4 bytes)
		0x27, 0xff, 0xff, 0xff, 0x7f, 0x66, 0x01, 0x10,
		0xb1, 0x02,
		0xb4,                   // pop: size 8, logmin 0, logmax 100 again
		0xfe, 0x02, 0x10, 1, 2, // long item, skipped
		0x05, 0x84, 0x09, 0x02, 0xa1, 0x02, // PresentStatus, logical
		0x05, 0x85, 0x19, 0x44, 0x29, 0x45, // Charging..Discharging
		0x75, 0x01, 0x95, 0x02, 0x25, 0x01, 0x81, 0x02, // input 2×1 bit
		0x95, 0x06, 0x81, 0x03, // padding
		0xc0,
		0x05, 0x84, 0x09, 0x1a, 0xa1, 0x81, // Input.[1]
		0x09, 0x30, 0x85, 0x02, 0x75, 0x10, 0x95, 0x01, 0x26, 0xff, 0x00,
		0x67, 0x21, 0xd1, 0xf0, 0x00, 0x55, 0x07, 0xb1, 0x02,
		0xc0, 0xc0, 0xc0,
	}
	d, err := ParseDescriptor(desc)
	if err != nil {
		t.Fatal(err)
	}
	if !d.UsesReportIDs || d.Application != 0x00840004 {
		t.Errorf("UsesReportIDs %v Application %08x", d.UsesReportIDs, d.Application)
	}
	for _, tt := range []struct {
		kind           ReportKind
		path           string
		id             uint8
		off, size      int
		logMin, logMax int64
		unitExp        int8
		exponent       int
	}{
		{Feature, "UPS.PowerSummary.RemainingCapacity", 1, 0, 8, 0, 100, 0, 0},
		{Feature, "UPS.PowerSummary.RunTimeToEmpty", 1, 8, 32, -1, 0x7fffffff, 0, 0},
		{Input, "UPS.PowerSummary.PresentStatus.Charging", 1, 0, 1, 0, 1, 0, 0},
		{Input, "UPS.PowerSummary.PresentStatus.Discharging", 1, 1, 1, 0, 1, 0, 0},
		{Feature, "UPS.PowerSummary.Input.[1].Voltage", 2, 0, 16, 0, 255, 7, 0},
	} {
		f := d.Find(tt.kind, tt.path)
		if f == nil {
			t.Errorf("%v %s: not found", tt.kind, tt.path)
			continue
		}
		if f.ReportID != tt.id || f.BitOffset != tt.off || f.BitSize != tt.size || f.LogMin != tt.logMin || f.LogMax != tt.logMax || f.UnitExp != tt.unitExp || f.Exponent() != tt.exponent {
			t.Errorf("%s: got id %d off %d size %d log %d..%d exp %d/%d", tt.path, f.ReportID, f.BitOffset, f.BitSize, f.LogMin, f.LogMax, f.UnitExp, f.Exponent())
		}
	}
	if got := d.ReportLen(Input, 1); got != 2 {
		t.Errorf("input report 1 length %d, want 2 (ID + 8 bits)", got)
	}
	if got := d.ReportLen(Feature, 1); got != 6 {
		t.Errorf("feature report 1 length %d, want 6", got)
	}
}

func TestParseDescriptorArray(t *testing.T) {
	d, err := ParseDescriptor([]byte{0x05, 0x84, 0x09, 0x04, 0xa1, 0x01, 0x19, 0x01, 0x29, 0x03, 0x75, 0x08, 0x95, 0x02, 0x81, 0x00, 0xc0})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Fields) != 2 || d.Fields[1].BitOffset != 8 || d.Fields[0].UsageMin != 0x00840001 || d.Fields[0].UsageMax != 0x00840003 || d.Fields[0].Flags&FlagVariable != 0 {
		t.Errorf("array fields: %+v", d.Fields)
	}
}

func TestParseDescriptorErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []byte
		off  int
		msg  string
	}{
		{"truncated item", []byte{0x05, 0x84, 0x26, 0xff}, 2, "needs 2 data bytes"},
		{"truncated long", []byte{0xfe, 0x05, 0x00, 1}, 0, "long item"},
		{"unbalanced end", []byte{0xc0}, 0, "end collection"},
		{"open collection", []byte{0xa1, 0x01}, 2, "collection(s) open"},
		{"pop without push", []byte{0xb4}, 0, "pop without push"},
		{"report id 0", []byte{0x85, 0x00}, 0, "report ID 0"},
		{"usage max without min", []byte{0x29, 0x03}, 0, "usage maximum"},
		{"huge range", []byte{0x19, 0x00, 0x2a, 0xff, 0xff}, 2, "usage range"},
		{"reserved type", []byte{0x0c}, 0, "reserved item type"},
		{"huge report", []byte{0x75, 0x20, 0x96, 0xff, 0x0f, 0x81, 0x02}, 5, "grows past"},
	} {
		_, err := ParseDescriptor(tt.in)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Offset != tt.off || !strings.Contains(pe.Msg, tt.msg) {
			t.Errorf("%s: got %v, want offset %d and %q", tt.name, err, tt.off, tt.msg)
		}
	}
}

func TestFieldValues(t *testing.T) {
	d := &Descriptor{UsesReportIDs: true}
	for _, tt := range []struct {
		name   string
		f      Field
		report []byte
		want   float64
	}{
		{"unsigned 8", Field{BitOffset: 0, BitSize: 8, LogMax: 255}, []byte{1, 0xfe}, 254},
		{"signed 32 -1", Field{BitOffset: 0, BitSize: 32, LogMin: -1, LogMax: 0x7fffffff}, []byte{1, 0xff, 0xff, 0xff, 0xff}, -1},
		{"bit 5", Field{BitOffset: 5, BitSize: 1, LogMax: 1}, []byte{1, 0x25}, 1},
		{"bit 4", Field{BitOffset: 4, BitSize: 1, LogMax: 1}, []byte{1, 0x25}, 0},
		{"unaligned 12", Field{BitOffset: 4, BitSize: 12, LogMax: 4095}, []byte{1, 0xa0, 0xbc}, 0xbca},
		{"volt exp 6", Field{BitOffset: 8, BitSize: 16, LogMax: 65535, Unit: 0x00f0d121, UnitExp: 6}, []byte{7, 0x1d, 0x02, 0x01}, 25.8},
		{"bits above the range dropped, as NUT", Field{BitOffset: 0, BitSize: 8, LogMax: 100}, []byte{1, 0xc8}, 0x48},
		{"clamped", Field{BitOffset: 0, BitSize: 8, LogMin: 10, LogMax: 100}, []byte{1, 0x02}, 10},
		{"physical", Field{BitOffset: 0, BitSize: 8, LogMax: 255, PhyMax: 510, HavePhy: true}, []byte{1, 10}, 20},
	} {
		got, err := d.Value(&tt.f, tt.report)
		if err != nil || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := d.Value(&Field{BitOffset: 8, BitSize: 16, LogMax: 1}, []byte{1, 2}); err == nil {
		t.Error("short report: no error")
	}
}

func TestEncode(t *testing.T) {
	d := &Descriptor{UsesReportIDs: true}
	f := &Field{BitOffset: 4, BitSize: 8, LogMin: -128, LogMax: 127}
	rep := []byte{9, 0x0f, 0xf0}
	if err := d.Encode(f, rep, -1); err != nil {
		t.Fatal(err)
	}
	if rep[1] != 0xff || rep[2] != 0xff {
		t.Errorf("after encode -1: % x", rep)
	}
	if v, _ := d.Logical(f, rep); v != -1 {
		t.Errorf("read back %d", v)
	}
	if err := d.Encode(f, rep, 0x12); err != nil || rep[1] != 0x2f || rep[2] != 0xf1 {
		t.Errorf("encode 0x12: % x %v (neighbouring bits must stay)", rep, err)
	}
	// -1 reaches a delay field even when its logical minimum is 0, as NUT writes it.
	delay := &Field{BitSize: 32, LogMin: 0, LogMax: 0x7fffffff}
	if l := delay.ToLogical(-1); l != -1 {
		t.Errorf("ToLogical(-1) = %d", l)
	}
	volt := &Field{BitSize: 16, LogMax: 65535, Unit: 0x00f0d121, UnitExp: 6}
	if l := volt.ToLogical(25.8); l != 258 {
		t.Errorf("ToLogical(25.8 V) = %d", l)
	}
}

// TestEatonFragments parses the real descriptor fragments of
// testdata/*.txt and checks them against the fields NUT printed.
func TestEatonFragments(t *testing.T) {
	t.Run("3S 700 head", func(t *testing.T) {
		dm := readDump(t, "eaton-3s-700-nut-2887.txt")
		if len(dm.head) != 290 {
			t.Fatalf("head is %d bytes", len(dm.head))
		}
		// The fragment ends inside collections: it must say so, at its end.
		_, err := ParseDescriptor(dm.head)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Offset != 290 || !strings.Contains(pe.Msg, "open") {
			t.Fatalf("got %v", err)
		}
		var open int
		if _, err := fmt.Sscanf(pe.Msg, "descriptor ends with %d collection(s) open", &open); err != nil {
			t.Fatal(err)
		}
		// Close the open collections (our bytes) and check the fields.
		closed := append(append([]byte{}, dm.head...), repeatByte(0xc0, open)...)
		d, err := ParseDescriptor(closed)
		if err != nil {
			t.Fatal(err)
		}
		f := d.Find(Feature, "UPS.BatterySystem.Charger.Status")
		if f == nil || f.ReportID != 0x07 || f.BitOffset != 0 || f.BitSize != 8 {
			t.Fatalf("Charger.Status: %+v", f)
		}
		v, err := d.Value(f, dm.reports[0x07])
		if err != nil || v != 2 {
			t.Errorf("Charger.Status = %v, %v; NUT printed 2", v, err)
		}
		if f := d.Find(Feature, "UPS.Flow.[4].ConfigApparentPower"); f == nil || f.ReportID != 0x0d || f.BitSize != 16 || f.Exponent() != 0 {
			t.Errorf("Flow.[4].ConfigApparentPower: %+v", f)
		}
	})
	t.Run("5SC 750 tail", func(t *testing.T) {
		dm := readDump(t, "eaton-5sc-750-nut-2380.txt")
		if len(dm.head) != 13 || len(dm.tail) != 250 {
			t.Fatalf("head %d tail %d bytes", len(dm.head), len(dm.tail))
		}
		// The tail starts inside UPS.PowerSummary.PresentStatus with 8-bit
		// flags (NUT: Size 8, LogMax 255); this prefix is ours.
		prefix := []byte{0x05, 0x84, 0x09, 0x04, 0xa1, 0x01, 0x09, 0x24, 0xa1, 0x00, 0x09, 0x02, 0xa1, 0x02,
			0x05, 0x85, 0x85, 0x01, 0x75, 0x08, 0x95, 0x01, 0x15, 0x00, 0x26, 0xff, 0x00}
		d, err := ParseDescriptor(append(prefix, dm.tail...))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			path      string
			id        uint8
			off, size int
			exp       int
		}{
			{"UPS.PowerSummary.PresentStatus.ShutdownImminent", 0x02, 24, 8, 0},
			{"UPS.PowerSummary.Timer", 0x18, 0, 32, 0},
			{"UPS.PowerSummary.Voltage", 0x07, 0, 16, -1}, // NUT: offset 8, after PercentLoad in the unread part
		} {
			f := d.Find(Feature, tt.path)
			if f == nil || f.ReportID != tt.id || f.BitOffset != tt.off || f.BitSize != tt.size || f.Exponent() != tt.exp {
				t.Errorf("%s: %+v", tt.path, f)
			}
		}
		for _, nl := range dm.nut {
			f := d.Find(nl.kind, nl.path)
			if f == nil {
				continue // not in the fragment
			}
			g := *f
			g.BitOffset, g.BitSize = nl.offset, nl.bit // NUT's place in the whole report
			v, err := d.Value(&g, dm.reports[nl.id])
			if err != nil || math.Abs(v-nl.value) > 1e-9 {
				t.Errorf("%s = %v, %v; NUT printed %v", nl.path, v, err, nl.value)
			}
		}
	})
}

func repeatByte(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func FuzzParseDescriptor(f *testing.F) {
	for _, name := range []string{"eaton-3s-700-nut-2887.txt", "eaton-5sc-750-nut-2380.txt"} {
		dm := readDump(f, name)
		f.Add(dm.head)
		f.Add(dm.tail)
	}
	f.Add(layout3S.build())
	f.Add(layout5SC.build())
	f.Add([]byte{0xfe, 0x00, 0x00, 0xa4, 0xb4, 0x19, 0x01, 0x2b, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(b) {
				t.Fatalf("error %v is not a ParseError within the input", err)
			}
			return
		}
		for _, fl := range d.Fields {
			rep := make([]byte, d.ReportLen(fl.Kind, fl.ReportID))
			_, _ = d.Value(fl, rep)
			_ = d.Encode(fl, rep, -1)
			_ = fl.PathString()
		}
	})
}
