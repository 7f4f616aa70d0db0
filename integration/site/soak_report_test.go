package site

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMemAvailable(t *testing.T) {
	for page, want := range map[string]float64{
		"<h2>memory</h2>\n906.2 MiB total, 771.5 MiB available<br>": 771.5,
		"no memory here":       math.NaN(),
		" MiB available":       math.NaN(),
		"x, abc MiB available": math.NaN(),
	} {
		got := memAvailable(page)
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("memAvailable(%q) = %v, want %v", page, got, want)
		}
	}
}

// The soak's windows: a two-hour soak compares its first and last hour,
// a shorter one its halves; the PSS total of samples missing a daemon
// counts the daemons read; MemAvailable is reported only when read.
func TestSoakWindows(t *testing.T) {
	for _, tc := range []struct {
		soak time.Duration
		want map[string]float64 // by the report's name's start
	}{
		// 2..59 min: upsd alone (5); 60..119 (the last hour): vpn too (+7).
		{2 * time.Hour, map[string]float64{
			"soak PSS total, every daemon, first 1h0m0s mean": 5, "soak PSS total, every daemon, last 1h0m0s mean": 12,
			"soak PSS total, every daemon, last 1h0m0s max": 12, "soak PSS growth": 7, "soak RSS growth": 22,
			"soak guest MemAvailable, first": 700,
			// lanroute's 3 MB (gokrazy's figure) besides the daemons' RSS.
			"soak RSS total, every daemon and lanroute, first 1h0m0s mean": 23,
			"soak RSS total, every daemon and lanroute, last 1h0m0s mean":  45}},
		{10 * time.Minute, map[string]float64{
			"soak PSS total, every daemon, first 5m0s mean": 5, "soak PSS growth": 0, "soak guest MemAvailable": math.NaN(),
			"soak RSS total, every daemon and lanroute": math.NaN()}},
	} {
		var ss []memSample
		for at := 2 * time.Minute; at < tc.soak; at += time.Minute {
			m := memSample{at: at, daemon: map[string]map[string]float64{
				"upsd": {pss: 5, rss: 20, dirty: 3, heap: 2},
			}, memAvailable: math.NaN()}
			if at >= time.Hour {
				m.daemon["vpn"] = map[string]float64{pss: 7, rss: 22}
			}
			if tc.soak > time.Hour {
				m.memAvailable = 700
				m.programRSS = map[string]float64{"lanroute": 3, "init": 9}
			}
			ss = append(ss, m)
		}
		got := map[string]float64{}
		reportSoak(t, ss, tc.soak, func(name string, v float64, unit string) { got[name] = v })
		for prefix, want := range tc.want {
			found := false
			for name, v := range got {
				if strings.HasPrefix(name, prefix) {
					found = true
					if math.Abs(v-want) > 0.05 {
						t.Errorf("soak %s: %s = %v, want %v", tc.soak, name, v, want)
					}
				}
			}
			if found == math.IsNaN(want) {
				t.Errorf("soak %s: a figure %q reported: %v, want %v", tc.soak, prefix, found, !math.IsNaN(want))
			}
		}
	}
}

func TestDaemonFigures(t *testing.T) {
	page := "# HELP gate_memory_pss_bytes x\n# TYPE gate_memory_pss_bytes gauge\ngate_memory_pss_bytes 5.24288e+06\n" +
		"process_resident_memory_bytes 2.097152e+07\ngo_goroutines 12\nprocess_open_fds 9\ngo_memstats_heap_inuse_bytes_total 1\ngate_memory_private_dirty_bytes x\n"
	got := daemonFigures(page)
	want := map[string]float64{pss: 5, rss: 20, goroutines: 12, fds: 9}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("daemonFigures = %v, want %v", got, want)
	}
}

func TestProgramRSS(t *testing.T) {
	for _, tc := range []struct {
		page string
		want map[string]float64
	}{
		{`<div class="progress-bar" style="width: 1%" title="init uses 9.5 MiB RSS">` +
			`<div class="progress-bar" style="width: 2%" title="/gokrazy/lanroute uses 3.2 MiB RSS">` +
			`<div class="progress-bar" style="width: 2%" title="/user/upsd uses 18.8 MiB RSS">` +
			`<div title="memory usage outside of gokrazy services">`,
			map[string]float64{"init": 9.5, "lanroute": 3.2, "upsd": 18.8}},
		{`title="/user/x uses many MiB RSS" title="/user/y uses 1 GiB RSS" title="unterminated`, map[string]float64{}},
		{"", map[string]float64{}},
	} {
		if got := programRSS(tc.page); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("programRSS(%q) = %v, want %v", tc.page, got, tc.want)
		}
	}
}
