package site

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
// journey does), brings the tunnel up and then, for GATE_SOAK (default
// 20m), keeps it busy: NUT clients (upsc from every server every 2 s), a
// TFTP transfer of the iPXE binary every 10 s (Debian's atftp), tunnel
// traffic (pings from the hub every 5 s) and dyndns polling (its 5 s
// interval). From the third minute on, every minute, it reads each
// daemon's resident memory (process_resident_memory_bytes on its
// /metrics) and reports the total of the first and the last sample and the
// growth between them. The daemons are one multi-call binary: its shared
// pages count in every process's RSS, so the total overstates the memory
// used.
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
	j := &journey{t: t, run: Run{Name: "soak", Arch: "arm64", Address: "static"}}
	if err := j.boot(); err != nil {
		t.Fatal(err)
	}
	if err := j.tunnel(); err != nil {
		t.Fatal(err)
	}
	lan := j.s.Servers[0].Host
	rss := func() (map[string]float64, error) {
		m := map[string]float64{}
		for name, port := range soakPorts {
			out, err := lan.Output("curl", "-s", "--max-time", "10", fmt.Sprintf("http://%s:%d/metrics", GateLAN, port))
			if err != nil {
				continue // a daemon this site does not run
			}
			for _, line := range strings.Split(out, "\n") {
				if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						m[name] = f / (1 << 20)
					}
				}
			}
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("no daemon's /metrics answered")
		}
		return m, nil
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

	type sample struct {
		at  time.Duration
		rss map[string]float64
	}
	var samples []sample
	start := time.Now()
	// The first two minutes are the daemons' warm-up (heaps growing to
	// their working size): not sampled.
	time.Sleep(min(2*time.Minute, soak/4))
	for time.Since(start) < soak {
		if m, err := rss(); err == nil {
			samples = append(samples, sample{time.Since(start), m})
		} else {
			t.Logf("%s: %v", time.Since(start).Round(time.Second), err)
		}
		time.Sleep(time.Minute)
	}
	close(stop)
	wg.Wait()
	if len(samples) < 2 {
		t.Fatalf("%d RSS samples", len(samples))
	}
	total := func(m map[string]float64) float64 {
		s := 0.0
		for _, v := range m {
			s += v
		}
		return s
	}
	first, last := samples[0], samples[len(samples)-1]
	var names []string
	for n := range last.rss {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("%-10s RSS %.1f MB at %s, %.1f MB at %s", n, first.rss[n], first.at.Round(time.Second), last.rss[n], last.at.Round(time.Second))
	}
	t.Logf("load served: %v", counts)
	netlab.Report(t, fmt.Sprintf("soak RSS total, every daemon, first sample (arm64 image, %s soak)", soak), total(first.rss), "MB")
	netlab.Report(t, fmt.Sprintf("soak RSS total, every daemon, last sample (arm64 image, %s soak)", soak), total(last.rss), "MB")
	netlab.Report(t, "soak RSS growth first to last sample", total(last.rss)-total(first.rss), "MB")
}
