package upsd

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationAbuseNUT: a thousand silent connections to the gate's
// NUT server from one source, then from 25, while Debian's upsc keeps
// answering from a server; then, still flooded, the UPS goes OB LB and
// the ordered plan runs to the gate's power-off.
func TestIntegrationAbuseNUT(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startUpsd()
	markers := l.secondaries()
	fh, srcs := l.s.Flooder(25)
	ceph1 := l.s.Server("ceph-1").Host
	upsc := func() (time.Duration, error) {
		start := time.Now()
		out, err := ceph1.Output("upsc", "ups@192.168.1.2", "ups.status")
		if err == nil && !strings.HasPrefix(out, "O") {
			err = fmt.Errorf("upsc: %q", out)
		}
		return time.Since(start), err
	}
	quiet, err := upsc()
	if err != nil {
		t.Fatal(err)
	}
	before := site.RSS(t, l.upsd)
	t.Logf("upsd RSS before the floods: %d KiB; upsc latency unflooded: %s", before, quiet.Round(time.Microsecond))
	var last *netlab.Proc
	for _, tc := range []struct {
		name string
		srcs []string
	}{{"one source", srcs[:1]}, {"25 sources", srcs}} {
		if last != nil {
			last.Kill()
		}
		p, report := site.Flood(t, fh, "192.168.1.2:3493", 1000, tc.srcs)
		last = p
		var worst time.Duration
		for i := 0; i < 5; i++ {
			d, err := upsc()
			if err != nil {
				t.Fatalf("%s: upsc while flooded: %v", tc.name, err)
			}
			worst = max(worst, d)
		}
		t.Logf("%s: %s; upsc latency under the flood (worst of 5): %s; upsd RSS %d KiB", tc.name, report.Line, worst.Round(time.Microsecond), site.RSS(t, l.upsd))
		if report.Held >= 1000 {
			t.Errorf("%s: every connection was held: %s", tc.name, report.Line)
		}
	}
	// Still flooded from 25 sources: the plan runs to its end, in order.
	l.src.Set("OB LB", 10, 60)
	l.waitPowerOff(2*time.Minute, l.upsd.Output)
	compute, ok := downAt(markers["compute-1"])
	if !ok {
		t.Fatal("compute-1 never ran its SHUTDOWNCMD")
	}
	for _, name := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		if at, ok := downAt(markers[name]); !ok || at < compute {
			t.Errorf("%s: down %v at %.3f, compute-1 at %.3f", name, ok, at, compute)
		}
	}
	last.Kill()
	time.Sleep(2 * time.Second)
	t.Logf("upsd RSS after the floods and the plan: %d KiB (before: %d KiB)", site.RSS(t, l.upsd), before)
	if _, err := os.Stat(l.marker); err != nil {
		t.Error("no power-off")
	}
}
