package daemon

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"gate/internal/metrics"
)

// A smaps_rollup of Linux 6.x (arm64 Pi kernel's fields are the same).
const smapsSample = `00400000-ffffd5dcc000 ---p 00000000 00:00 0                          [rollup]
Rss:               14336 kB
Pss:                5123 kB
Pss_Dirty:          4100 kB
Pss_Anon:           4100 kB
Pss_File:           1023 kB
Pss_Shmem:             0 kB
Shared_Clean:      10240 kB
Shared_Dirty:          0 kB
Private_Clean:        96 kB
Private_Dirty:      4000 kB
Referenced:        14336 kB
Anonymous:          4000 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`

func TestParseSmapsRollup(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]uint64 // checked fields
		absent   []string
		err      bool
	}{
		{name: "kernel sample", in: smapsSample,
			want: map[string]uint64{"Rss": 14336 << 10, "Pss": 5123 << 10, "Private_Dirty": 4000 << 10, "Swap": 0}},
		{name: "empty", in: "", absent: []string{"Pss"}},
		{name: "header only", in: "00400000-ffffd5dcc000 ---p 00000000 00:00 0 [rollup]\n", absent: []string{"Pss"}},
		{name: "no unit or another unit skipped", in: "Pss: 12\nRss: 3 MB\nPrivate_Dirty: 7 kB\n",
			want: map[string]uint64{"Private_Dirty": 7 << 10}, absent: []string{"Pss", "Rss"}},
		{name: "no trailing newline", in: "Pss:  9 kB", want: map[string]uint64{"Pss": 9 << 10}},
		{name: "negative", in: "Pss: -1 kB\n", err: true},
		{name: "not a number", in: "Pss: x kB\n", err: true},
		{name: "overflow", in: "Pss: 99999999999999999999 kB\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseSmapsRollup(strings.NewReader(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("no error, got %v", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got, ok := m[k]; !ok || got != v {
					t.Errorf("%s = %d (present %v), want %d", k, got, ok, v)
				}
			}
			for _, k := range tc.absent {
				if v, ok := m[k]; ok {
					t.Errorf("%s = %d, want absent", k, v)
				}
			}
		})
	}
}

// Property: every "Name: N kB" line written comes back as N×1024, whatever
// the padding, and nothing else comes back.
func TestParseSmapsRollupRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		want := map[string]uint64{}
		var b strings.Builder
		b.WriteString("00400000-ffffd5dcc000 ---p 00000000 00:00 0 [rollup]\n")
		for j := range r.IntN(20) {
			name := fmt.Sprintf("F%d_x", j)
			n := r.Uint64N(1 << 40)
			want[name] = n << 10
			fmt.Fprintf(&b, "%s:%s%d kB\n", name, strings.Repeat(" ", 1+r.IntN(12)), n)
		}
		got, err := parseSmapsRollup(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, b.String())
		}
		if len(got) != len(want) {
			t.Fatalf("case %d: %d fields, want %d", i, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("case %d: %s = %d, want %d", i, k, got[k], v)
			}
		}
	}
}

func TestMemoryCollector(t *testing.T) {
	p := filepath.Join(t.TempDir(), "smaps_rollup")
	os.WriteFile(p, []byte(smapsSample), 0o644)
	reg := metrics.NewRegistry()
	reg.MustRegister(newMemoryCollector(p))
	if got, want := gathered(t, reg), map[string]float64{"gate_memory_pss_bytes": 5123 << 10, "gate_memory_private_dirty_bytes": 4000 << 10}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gathered %v, want %v", got, want)
	}

	// No file (not Linux, an old kernel): no gauge, no error.
	reg = metrics.NewRegistry()
	reg.MustRegister(newMemoryCollector(filepath.Join(t.TempDir(), "absent")))
	if got := gathered(t, reg); len(got) != 0 {
		t.Errorf("absent file: gathered %v", got)
	}

	// This process's own (Linux): a PSS above zero and at most the RSS.
	if _, err := os.Stat(smapsRollup); err == nil {
		f, _ := os.Open(smapsRollup)
		defer f.Close()
		m, err := parseSmapsRollup(f)
		if err != nil {
			t.Fatal(err)
		}
		if m["Pss"] == 0 || m["Pss"] > m["Rss"] {
			t.Errorf("own smaps_rollup: Pss %d, Rss %d", m["Pss"], m["Rss"])
		}
	}
}

func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)

	t.Setenv("GOMEMLIMIT", "")
	for name, want := range map[string]int64{"upsd": MemoryLimit, "vpn": MemoryLimit, "tailnet": MemoryLimitTailnet} {
		if got := setMemoryLimit(name); got != want {
			t.Errorf("%s: limit %d, want %d", name, got, want)
		}
		if got := debug.SetMemoryLimit(-1); got != want {
			t.Errorf("%s: runtime's limit %d, want %d", name, got, want)
		}
	}
	// GOMEMLIMIT set: the runtime read it at start; the daemon leaves it.
	debug.SetMemoryLimit(123 << 20)
	t.Setenv("GOMEMLIMIT", "123MiB")
	if got := setMemoryLimit("upsd"); got != 123<<20 {
		t.Errorf("with GOMEMLIMIT: limit %d, want %d", got, 123<<20)
	}
}

func TestSetGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	if got := setGCPercent(); got != GCPercent {
		t.Errorf("percent %d, want %d", got, GCPercent)
	}
	if got := debug.SetGCPercent(GCPercent); got != GCPercent {
		t.Errorf("runtime's percent %d, want %d", got, GCPercent)
	}
	// GOGC set: the runtime read it at start; the daemon leaves it.
	debug.SetGCPercent(80)
	t.Setenv("GOGC", "80")
	if got := setGCPercent(); got != 80 {
		t.Errorf("with GOGC: percent %d, want 80", got)
	}
	if got := debug.SetGCPercent(80); got != 80 {
		t.Errorf("with GOGC: runtime's percent %d, want 80", got)
	}
}

// gathered returns each gauge's value by name.
func gathered(t *testing.T, reg *metrics.Registry) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, mf := range reg.Gather() {
		for _, x := range mf.Samples {
			m[mf.Name] = x.Value
		}
	}
	return m
}
