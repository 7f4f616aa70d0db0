package status

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gate/internal/history"
)

// FuzzMetricsToPower: whatever upsd's /metrics say, the power section is
// consistent: Status is the set flags in NUT's order, no value is NaN,
// and the page renders.
func FuzzMetricsToPower(f *testing.F) {
	f.Add(metricsText["upsd"])
	f.Add("gate_ups_status{flag=\"LB\"} 1\ngate_ups_status{flag=\"OB\"} 1\ngate_ups_status{flag=\"OL\"} 0\ngate_ups_battery_charge_percent NaN\n")
	f.Add("# TYPE gate_ups_load_percent counter\ngate_ups_load_percent 5\n")
	c := testConfig(f)
	g := &Gatherer{Config: c, StateRoot: f.TempDir()}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			return
		}
		p := g.power(m, map[string]string{})
		if p.Status != strings.Join(p.Flags, " ") {
			t.Fatalf("status %q from flags %q", p.Status, p.Flags)
		}
		if !slices.Equal(statusOrder(slices.Clone(p.Flags)), p.Flags) {
			t.Fatalf("flags not in order: %q", p.Flags)
		}
		for _, v := range []*float64{p.Charge, p.Runtime, p.Load} {
			if v != nil && math.IsNaN(*v) {
				t.Fatal("NaN value kept")
			}
		}
		var b bytes.Buffer
		if err := Render(&b, &Snapshot{Site: "x", Time: t0, Power: p}, history.New(SeriesNames, history.DefaultTiers...)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzJournal: upsd's plan journal as written (or torn by a power cut):
// every entry read has a step, and appending a line never loses the ones
// before it.
func FuzzJournal(f *testing.F) {
	f.Add(`{"step":"start","reason":"low battery","at":"2026-11-26T12:03:00Z"}` + "\n" + `{"step":"group","group":"compute","at":"2026-11-26T12:04:00Z"}` + "\n")
	f.Add(`{"step":"poweroff","at":"2026-11-26T12:06:02Z"}` + "\n" + `{"step":"gro`)
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "plan.journal")
		os.WriteFile(p, []byte(content), 0o600)
		js, _, err := ReadJournals(dir, PlanJournal)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, j := range js {
			for _, e := range j.Entries {
				if e.Step == "" {
					t.Fatal("an entry without a step")
				}
			}
			n += len(j.Entries)
		}
		os.WriteFile(p, []byte(content+"\n"+`{"step":"poweroff","at":"2026-11-26T12:06:02Z"}`+"\n"), 0o600)
		js2, _, _ := ReadJournals(dir, PlanJournal)
		m := 0
		for _, j := range js2 {
			m += len(j.Entries)
		}
		if m != n+1 {
			t.Fatalf("%d entries, then %d after appending one", n, m)
		}
	})
}

// FuzzHistoryFile: a history file from /perm (torn, old, foreign) either
// loads within the tiers' capacities or is refused.
func FuzzHistoryFile(f *testing.F) {
	h := history.New(SeriesNames, history.DefaultTiers...)
	for i := 0; i < 100; i++ {
		h.Add(t0.Add(time.Duration(i)*time.Minute), []float64{1, 2, 3})
	}
	b, _ := h.Marshal()
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		g := history.New(SeriesNames, history.Tier{Name: "hours", Step: time.Minute, Cap: 10}, history.Tier{Name: "days", Step: 15 * time.Minute, Cap: 5})
		if g.Unmarshal(data) != nil {
			return
		}
		if g.Len("hours") > 11 || g.Len("days") > 6 {
			t.Fatalf("loaded past the capacity: %d, %d", g.Len("hours"), g.Len("days"))
		}
		var buf bytes.Buffer
		if err := Render(&buf, &Snapshot{Site: "x", Time: t0}, g); err != nil {
			t.Fatal(err)
		}
	})
}
