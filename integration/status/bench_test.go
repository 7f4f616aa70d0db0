package status

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/history"
	"gate/internal/status"
)

// TestSideBySideStatus: the page's render-and-serve time and size (curl
// in the LAN, median of 50), and the resident memory of statusd holding a
// week of history (a sample every 10 s, loaded from /perm) beside the same
// statusd with an empty history.
func TestSideBySideStatus(t *testing.T) {
	netlab.Bench(t, "curl")
	res := map[string]float64{}
	for _, week := range []bool{false, true} {
		name := "empty"
		if week {
			name = "week"
		}
		t.Run(name, func(t *testing.T) {
			s := newBenchLab(t, week)
			rss := s.metric("process_resident_memory_bytes")
			var times []float64
			var size float64
			for i := 0; i < 50; i++ {
				out, err := s.laptop.Output("curl", "-sf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", "-u", "gokrazy:"+s.pw, "http://"+gateIP+":8081/")
				if err != nil {
					t.Fatal(err, out)
				}
				f := strings.Fields(out)
				d, _ := strconv.ParseFloat(f[0], 64)
				size, _ = strconv.ParseFloat(f[1], 64)
				times = append(times, d)
			}
			sort.Float64s(times)
			res[name+"/rss"] = rss
			res[name+"/ms"] = times[len(times)/2] * 1000
			res[name+"/size"] = size
		})
	}
	netlab.Report(t, "status page served (week of history), median", res["week/ms"], "ms")
	netlab.Report(t, "status page size (week of history)", res["week/size"]/1024, "KiB")
	netlab.Report(t, "status page served (empty history), median", res["empty/ms"], "ms")
	netlab.Report(t, "statusd RSS with a week of history", res["week/rss"]/(1<<20), "MiB")
	netlab.Report(t, "statusd RSS with an empty history", res["empty/rss"]/(1<<20), "MiB")
	if res["empty/rss"] > 0 {
		netlab.Report(t, "statusd RSS week/empty", res["week/rss"]/res["empty/rss"], "ratio")
	}
}

type benchLab struct {
	t      *testing.T
	gate   *netlab.Host
	laptop *netlab.Host
	pw     string
}

// newBenchLab runs statusd alone in a gate namespace (the other daemons
// absent: the page says so) with, if week, a week of samples saved in its
// history file.
func newBenchLab(t *testing.T, week bool) *benchLab {
	l := netlab.New(t)
	sw := l.Host("lan")
	sw.Bridge("br0", "")
	gate, laptop := l.Host("gate"), l.Host("laptop")
	l.Attach(sw, "br0", gate, "eth0", gateIP+"/24")
	l.Attach(sw, "br0", laptop, "eth0", "192.168.1.50/24")
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	os.MkdirAll(secrets, 0o700)
	os.WriteFile(filepath.Join(secrets, "gokrazy-password"), []byte("benchpw"), 0o600)
	siteFile := filepath.Join(dir, "site.yaml")
	os.WriteFile(siteFile, []byte(`site: {name: bench}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-1, address: 192.168.1.2/24}
ups: {source: "nut://192.168.1.30/ups"}
status: {interval: 1s}
`), 0o644)
	state := filepath.Join(dir, "state", "statusd")
	os.MkdirAll(state, 0o700)
	if week {
		h := history.New(status.SeriesNames, history.DefaultTiers...)
		start := time.Now().Add(-7 * 24 * time.Hour)
		for i := 0; i < 7*24*360; i++ {
			h.Add(start.Add(time.Duration(i)*10*time.Second), []float64{float64(50 + i%50), float64(20 + i%7), float64(i % 120)})
		}
		if err := h.Save(filepath.Join(state, "history")); err != nil {
			t.Fatal(err)
		}
	}
	p := gate.Start("statusd", nil, netlab.Build(t, "gate/cmd/statusd"), "-config", siteFile, "-secrets", secrets, "-state", state, "-metrics", "127.0.0.1:9107", "-perm", dir)
	if err := p.WaitFor("msg=ready", 15*time.Second); err != nil {
		t.Fatal(err, p.Output())
	}
	time.Sleep(5 * time.Second) // a few gathers
	return &benchLab{t: t, gate: gate, laptop: laptop, pw: "benchpw"}
}

func (b *benchLab) metric(name string) float64 {
	out, err := b.gate.Output("curl", "-sf", "http://127.0.0.1:9107/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	b.t.Fatalf("no %s in statusd's metrics", name)
	return 0
}
