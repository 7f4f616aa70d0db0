package site

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
)

// soakPorts are the daemons' /metrics ports (internal/daemon).
var soakPorts = map[string]int{"vpn": 9101, "dyndns": 9102, "upsd": 9103, "bootstrapd": 9104, "bastion": 9105, "clock": 9106, "statusd": 9107, "tailnet": 9108}

// TestSideBySideSoakRSS boots the arm64 Pi image (qemu raspi3b, as the
// journey does) of the journey's site at the site file's defaults: its
// address by DHCP (so lanroute runs beside gokrazy's DHCP client, and the
// box's 1 h lease is renewed every half hour), dual stack, with the status
// page (statusd scrapes every daemon every 10 s). It brings the tunnel up and then, for GATE_SOAK (default
// 20m), keeps it busy: NUT clients (upsc from every server every 2 s), a
// TFTP transfer of the iPXE binary every 10 s (Debian's atftp), tunnel
// traffic (pings from the hub every 5 s) and dyndns polling (its 5 s
// interval). From the third minute on, every minute, it reads each
// daemon's memory on its /metrics: the proportional set size
// (gate_memory_pss_bytes: the daemons are one multi-call binary, whose
// shared pages count in every process's RSS but are divided among them in
// the PSS, so the PSS total is the memory used), the private dirty pages,
// the RSS and the Go heap in use; and, from gokrazy's overview page, the
// guest's MemAvailable and the RSS of every program it runs (lanroute's
// among them). It reports the first hour against the last (for a soak
// under two hours, the first half against the last): the PSS total's mean
// and maximum, the RSS total's mean, each daemon's means.
//
// GATE_LAB_PREFIX (integration/netlab) names its namespaces apart from a
// journey running beside it.
func TestSideBySideSoakRSS(t *testing.T) {
	netlab.Bench(t, "qemu-system-aarch64", "curl", "upsc", "atftp", "ping")
	soak := 20 * time.Minute
	if s := os.Getenv("GATE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("GATE_SOAK=%q: %v", s, err)
		}
		soak = d
	}
	j := &journey{t: t, run: Run{Name: "soak", Arch: "arm64", Address: "dhcp", IPv6: true, Status: true}}
	if err := j.boot(); err != nil {
		t.Fatal(err)
	}
	if err := j.tunnel(); err != nil {
		t.Fatal(err)
	}
	lan := j.s.Servers[0].Host
	auth, err := GokrazyAuth(j.dir, j.secrets)
	if err != nil {
		t.Fatal(err)
	}
	read := func() (memSample, error) {
		return readMemory(lan, auth)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	every := func(name string, d time.Duration, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(d)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
				}
				if fn() == nil {
					mu.Lock()
					counts[name]++
					mu.Unlock()
				}
			}
		}()
	}
	for _, sv := range j.s.Servers {
		every("upsc", 2*time.Second, func() error {
			_, err := sv.Host.Output("upsc", "ups@"+GateLAN.String(), "ups.status")
			return err
		})
	}
	out := filepath.Join(t.TempDir(), "undionly.kpxe")
	every("tftp", 10*time.Second, func() error {
		_, err := lan.Run("atftp", "--option", "blksize 1468", "-g", "-r", "undionly.kpxe", "-l", out, GateLAN.String(), "69")
		return err
	})
	every("ping", 5*time.Second, func() error {
		_, err := j.hub.Host.Run("ping", "-c3", "-i0.2", "-W1", tunnelGate)
		return err
	})

	var samples []memSample
	start := time.Now()
	// The first two minutes are the daemons' warm-up (heaps growing to
	// their working size): not sampled.
	time.Sleep(min(2*time.Minute, soak/4))
	for time.Since(start) < soak {
		if m, err := read(); err == nil {
			m.at = time.Since(start)
			samples = append(samples, m)
			t.Logf("%s: PSS %.1f MB, RSS %.1f MB in total; MemAvailable %.1f MB %s", m.at.Round(time.Second), m.total(pss), m.total(rss), m.memAvailable, m.line())
		} else {
			t.Logf("%s: %v", time.Since(start).Round(time.Second), err)
		}
		time.Sleep(time.Minute)
	}
	close(stop)
	wg.Wait()
	if len(samples) < 2 {
		t.Fatalf("%d memory samples", len(samples))
	}
	t.Logf("load served: %v", counts)
	if n, ok := samples[len(samples)-1].daemon["bootstrapd"][tftpPolled]; ok {
		t.Logf("TFTP waits that polled for the ACK on the Pi: %.0f", n)
	} else {
		t.Errorf("bootstrapd exports no %s", tftpPolled)
	}
	reportSoak(t, samples, soak, func(name string, v float64, unit string) { netlab.Report(t, name, v, unit) })
}

// The figures read from each daemon's /metrics.
const (
	rss   = "process_resident_memory_bytes"
	pss   = "gate_memory_pss_bytes"
	dirty = "gate_memory_private_dirty_bytes"
	heap  = "go_memstats_heap_inuse_bytes"
	// Counts, not sizes: a leak shows in them before it shows in the
	// memory (dyndns's idle HTTP connections did).
	goroutines = "go_goroutines"
	fds        = "process_open_fds"
	// bootstrapd's TFTP waits that polled for the ACK: none is expected
	// from a client behind the emulated Pi's USB NIC.
	tftpPolled = "gate_bootstrap_tftp_polled_waits_total"
)

// memSample is one reading of every daemon's memory, in MB (2^20 bytes).
type memSample struct {
	at           time.Duration
	daemon       map[string]map[string]float64 // daemon → metric → MB (goroutines, fds: counts)
	memAvailable float64                       // the guest's, from gokrazy's overview page; NaN when not read
	// programRSS is the RSS of every program gokrazy supervises (and of
	// its init), by base name, from its overview page: lanroute and
	// gokrazy's own programs, which have no /metrics, besides the daemons.
	programRSS map[string]float64
}

func (m memSample) total(metric string) float64 {
	s := 0.0
	for _, v := range m.daemon {
		s += v[metric]
	}
	return s
}

func (m memSample) line() string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(m.daemon)) {
		fmt.Fprintf(&b, " %s=%.1f/%.1f", n, m.daemon[n][pss], m.daemon[n][rss])
	}
	return "(PSS/RSS:" + b.String() + ")"
}

// readMemory reads every daemon's memory figures over its /metrics and the
// guest's MemAvailable from gokrazy's overview page (curl config auth,
// see GokrazyAuth; none: not read).
func readMemory(lan *netlab.Host, auth string) (memSample, error) {
	m := memSample{daemon: map[string]map[string]float64{}, memAvailable: math.NaN()}
	for name, port := range soakPorts {
		out, err := lan.Output("curl", "-s", "--max-time", "10", fmt.Sprintf("http://%s:%d/metrics", GateLAN, port))
		if err != nil {
			continue // a daemon this site does not run
		}
		v := daemonFigures(out)
		if len(v) > 0 {
			m.daemon[name] = v
		}
	}
	if len(m.daemon) == 0 {
		return m, fmt.Errorf("no daemon's /metrics answered")
	}
	if auth != "" {
		page, err := lan.Output("curl", "-s", "-m", "10", "-K", auth, "http://"+GateLAN.String()+"/")
		if err == nil {
			m.memAvailable = memAvailable(page)
			m.programRSS = programRSS(page)
		}
	}
	return m, nil
}

// daemonFigures reads the soak's figures from a daemon's /metrics page:
// sizes in MB, counts as they are.
func daemonFigures(page string) map[string]float64 {
	v := map[string]float64{}
	for _, line := range strings.Split(page, "\n") {
		for _, metric := range []string{rss, pss, dirty, heap, goroutines, fds, tftpPolled} {
			if x, ok := strings.CutPrefix(line, metric+" "); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
					if strings.HasSuffix(metric, "_bytes") {
						f /= 1 << 20
					}
					v[metric] = f
				}
			}
		}
	}
	return v
}

// memAvailable reads "N MiB total, M MiB available" of gokrazy's overview
// page; NaN when absent.
func memAvailable(page string) float64 {
	i := strings.Index(page, " MiB available")
	if i < 0 {
		return math.NaN()
	}
	f := strings.Fields(page[:i])
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// programRSS reads gokrazy's "resident set size (RSS) by service" from
// its overview page: each bar's title is "NAME uses N MiB RSS" (NAME a
// path like /user/upsd, or init). It returns MB by base name.
func programRSS(page string) map[string]float64 {
	out := map[string]float64{}
	for _, part := range strings.Split(page, `title="`)[1:] {
		title, _, ok := strings.Cut(part, `"`)
		if !ok {
			continue
		}
		name, rest, ok := strings.Cut(title, " uses ")
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(rest, " MiB RSS")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			continue
		}
		out[filepath.Base(name)] = v
	}
	return out
}

// reportSoak prints the first and the last hour (or, for a soak shorter
// than two hours, its first and last half) side by side: the PSS total's
// mean and maximum, each daemon's mean PSS and RSS, the guest's
// MemAvailable.
func reportSoak(t testing.TB, samples []memSample, soak time.Duration, report func(name string, value float64, unit string)) {
	w := min(time.Hour, soak/2)
	var first, last []memSample
	for _, s := range samples {
		if s.at < w {
			first = append(first, s)
		}
		if s.at >= soak-w {
			last = append(last, s)
		}
	}
	if len(first) == 0 || len(last) == 0 {
		t.Fatalf("no samples in the first or the last %s", w)
	}
	mean := func(ss []memSample, f func(memSample) float64) float64 {
		s, n := 0.0, 0
		for _, x := range ss {
			if v := f(x); !math.IsNaN(v) {
				s += v
				n++
			}
		}
		if n == 0 {
			return math.NaN()
		}
		return s / float64(n)
	}
	maxOf := func(ss []memSample, f func(memSample) float64) float64 {
		m := math.Inf(-1)
		for _, x := range ss {
			m = max(m, f(x))
		}
		return m
	}
	names := map[string]bool{}
	for _, s := range samples {
		for n := range s.daemon {
			names[n] = true
		}
	}
	win := fmt.Sprintf("first %s (%d samples) → last %s (%d samples)", w, len(first), w, len(last))
	t.Logf("%s, mean MB:", win)
	for _, n := range slices.Sorted(maps.Keys(names)) {
		f := func(metric string) func(memSample) float64 {
			return func(s memSample) float64 {
				if v, ok := s.daemon[n][metric]; ok {
					return v
				}
				return math.NaN()
			}
		}
		t.Logf("%-10s PSS %5.1f → %5.1f  private dirty %5.1f → %5.1f  RSS %5.1f → %5.1f  Go heap in use %5.1f → %5.1f  goroutines %.0f → %.0f  open files %.0f → %.0f", n,
			mean(first, f(pss)), mean(last, f(pss)), mean(first, f(dirty)), mean(last, f(dirty)),
			mean(first, f(rss)), mean(last, f(rss)), mean(first, f(heap)), mean(last, f(heap)),
			mean(first, f(goroutines)), mean(last, f(goroutines)), mean(first, f(fds)), mean(last, f(fds)))
	}
	programs := map[string]bool{}
	for _, s := range samples {
		for n := range s.programRSS {
			programs[n] = true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(programs)) {
		f := func(s memSample) float64 {
			if v, ok := s.programRSS[n]; ok {
				return v
			}
			return math.NaN()
		}
		t.Logf("gokrazy's RSS of %-10s %5.1f → %5.1f", n, mean(first, f), mean(last, f))
	}
	tot := func(metric string) func(memSample) float64 {
		return func(s memSample) float64 { return s.total(metric) }
	}
	// The gate's own programs: the daemons (their /metrics) and, with
	// gate.address dhcp, lanroute (gokrazy's figure).
	own := func(s memSample) float64 {
		v := s.total(rss)
		if programs["lanroute"] {
			r, ok := s.programRSS["lanroute"]
			if !ok {
				return math.NaN()
			}
			v += r
		}
		return v
	}
	avail := func(s memSample) float64 { return s.memAvailable }
	arm := fmt.Sprintf("(arm64 image, %s soak)", soak)
	report("soak PSS total, every daemon, first "+w.String()+" mean "+arm, mean(first, tot(pss)), "MB")
	report("soak PSS total, every daemon, last "+w.String()+" mean "+arm, mean(last, tot(pss)), "MB")
	report("soak PSS total, every daemon, first "+w.String()+" max "+arm, maxOf(first, tot(pss)), "MB")
	report("soak PSS total, every daemon, last "+w.String()+" max "+arm, maxOf(last, tot(pss)), "MB")
	report("soak PSS growth, mean of the last "+w.String()+" − mean of the first", mean(last, tot(pss))-mean(first, tot(pss)), "MB")
	report("soak RSS total (shared text counted per daemon), first "+w.String()+" mean "+arm, mean(first, tot(rss)), "MB")
	report("soak RSS total (shared text counted per daemon), last "+w.String()+" mean "+arm, mean(last, tot(rss)), "MB")
	report("soak RSS growth, mean of the last "+w.String()+" − mean of the first", mean(last, tot(rss))-mean(first, tot(rss)), "MB")
	if programs["lanroute"] {
		report("soak RSS total, every daemon and lanroute, first "+w.String()+" mean "+arm, mean(first, own), "MB")
		report("soak RSS total, every daemon and lanroute, last "+w.String()+" mean "+arm, mean(last, own), "MB")
	}
	if a, b := mean(first, avail), mean(last, avail); !math.IsNaN(a) && !math.IsNaN(b) {
		report("soak guest MemAvailable, first "+w.String()+" mean "+arm, a, "MB")
		report("soak guest MemAvailable, last "+w.String()+" mean "+arm, b, "MB")
	}
}
