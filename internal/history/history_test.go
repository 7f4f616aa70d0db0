package history

import (
	"math"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestBoundedAndAveraged(t *testing.T) {
	h := New([]string{"charge", "load"}, Tier{Name: "fine", Step: time.Minute, Cap: 10}, Tier{Name: "coarse", Step: 10 * time.Minute, Cap: 3})
	// 100 minutes, two samples a minute: charge falls by one a minute.
	for m := 0; m < 100; m++ {
		for s := 0; s < 2; s++ {
			h.Add(t0.Add(time.Duration(m)*time.Minute+time.Duration(s)*30*time.Second), []float64{float64(100 - m), float64(s * 10)})
		}
	}
	for _, tc := range []struct {
		tier     string
		want     int // points, the one in progress included
		first    float64
		firstMin int
	}{
		{"fine", 11, 100 - 89, 89},    // the ten last full minutes, and minute 99 in progress
		{"coarse", 4, 100 - 64.5, 60}, // the three last full steps (60-89), and 90-99 in progress
	} {
		pts, ok := h.Points(tc.tier, "charge")
		if !ok {
			t.Fatalf("%s: no series", tc.tier)
		}
		if len(pts) != tc.want || h.Len(tc.tier) != tc.want {
			t.Fatalf("%s: %d points (Len %d), want %d", tc.tier, len(pts), h.Len(tc.tier), tc.want)
		}
		if pts[0].V != tc.first || !pts[0].T.Equal(t0.Add(time.Duration(tc.firstMin)*time.Minute)) {
			t.Errorf("%s: oldest point %v, want %v at minute %d", tc.tier, pts[0], tc.first, tc.firstMin)
		}
		for i := 1; i < len(pts); i++ {
			if !pts[i].T.After(pts[i-1].T) {
				t.Errorf("%s: points out of order at %d: %v", tc.tier, i, pts)
			}
		}
	}
	load, _ := h.Points("fine", "load")
	if load[0].V != 5 { // the average of 0 and 10
		t.Errorf("load not averaged over the step: %v", load[0])
	}
	if _, ok := h.Points("fine", "nope"); ok {
		t.Error("unknown series answered")
	}
}

func TestMissingValues(t *testing.T) {
	h := New([]string{"a", "b"}, Tier{Name: "x", Step: time.Minute, Cap: 5})
	h.Add(t0, []float64{1, math.NaN()})
	h.Add(t0.Add(time.Minute), []float64{2}) // short: b missing
	a, _ := h.Points("x", "a")
	b, _ := h.Points("x", "b")
	if len(a) != 2 || len(b) != 0 {
		t.Fatalf("a %v b %v: missing values must be left out", a, b)
	}
}

func TestSaveLoad(t *testing.T) {
	tiers := []Tier{{Name: "fine", Step: time.Minute, Cap: 4}, {Name: "coarse", Step: 5 * time.Minute, Cap: 4}}
	h := New([]string{"charge", "load"}, tiers...)
	for m := 0; m < 12; m++ {
		h.Add(t0.Add(time.Duration(m)*time.Minute), []float64{float64(m), float64(2 * m)})
	}
	path := filepath.Join(t.TempDir(), "history")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	// The new process keeps another set of series: "load" and a new one.
	g := New([]string{"load", "handshake"}, tiers...)
	if err := g.Load(path); err != nil {
		t.Fatal(err)
	}
	for _, tier := range []string{"fine", "coarse"} {
		want, _ := h.Points(tier, "load")
		got, _ := g.Points(tier, "load")
		if len(got) == 0 || len(got) != len(want) {
			t.Fatalf("%s: %d points after load, want %d", tier, len(got), len(want))
		}
		for i := range want {
			if !got[i].T.Equal(want[i].T) || got[i].V != want[i].V {
				t.Errorf("%s[%d]: %v, want %v", tier, i, got[i], want[i])
			}
		}
		if hs, _ := g.Points(tier, "handshake"); len(hs) != 0 {
			t.Errorf("a new series came back with points: %v", hs)
		}
	}
	// A smaller capacity after an update keeps the newest points.
	small := New([]string{"load"}, Tier{Name: "fine", Step: time.Minute, Cap: 2})
	if err := small.Load(path); err != nil {
		t.Fatal(err)
	}
	got, _ := small.Points("fine", "load")
	if len(got) != 3 || got[0].V != 18 || got[2].V != 22 {
		t.Errorf("capacity 2 after load: %v, want the two newest full steps (18, 20) and the one in progress (22)", got)
	}
	// A missing file is an empty history; garbage is an error.
	if err := New([]string{"a"}, tiers...).Load(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("missing file: %v", err)
	}
	if err := New([]string{"a"}, tiers...).Unmarshal([]byte("not gob")); err == nil {
		t.Error("garbage loaded without an error")
	}
}

// A week of samples every 10 s stays within the tiers' capacities.
func TestWeekBounded(t *testing.T) {
	h := New([]string{"charge", "load", "handshake"}, DefaultTiers...)
	for s := 0; s < 7*24*360; s++ {
		h.Add(t0.Add(time.Duration(s)*10*time.Second), []float64{50, 20, 30})
	}
	for _, tr := range DefaultTiers {
		if n := h.Len(tr.Name); n > tr.Cap+1 {
			t.Errorf("%s: %d points, capacity %d", tr.Name, n, tr.Cap)
		}
	}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a week saved: %d bytes", len(b))
	if len(b) > 100<<10 {
		t.Errorf("saved week is %d bytes", len(b))
	}
}
