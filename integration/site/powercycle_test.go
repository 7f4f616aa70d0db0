package site

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPowerCycles: the journey's dual-stack DHCP site on the arm64 Pi
// image (raspi3b), its power cut and restored GATE_POWER_CYCLES times
// (default 0: skipped; slow, outside make test and make e2e), each time
// at a running gate. After every power-on, every daemon is ready, gokrazy's
// DHCP client asked for its lease once (DHCPDISCOVER at the box: a client
// that restarts over and over never leaves the gate its name servers) and
// the clock is set by NTP, which needs those name servers.
func TestPowerCycles(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GATE_POWER_CYCLES"))
	if n <= 0 {
		t.Skip("GATE_POWER_CYCLES=N power-cycles the emulated Pi N times (some 2 minutes each)")
	}
	j := &journey{t: t, run: Run{Name: "power-cycles", Arch: "arm64", Address: "dhcp", IPv6: true}}
	if err := j.boot(); err != nil {
		t.Fatal(err)
	}
	discovers := func() int { return strings.Count(j.s.BoxDNS.Output(), "DHCPDISCOVER(") }
	for i := 1; i <= n; i++ {
		// A running gate: its clock synchronised, its state on /perm.
		if err := j.clockSet(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		time.Sleep(time.Duration(i%4) * 7 * time.Second) // a different moment each time
		before := discovers()
		j.gate.PowerCut()
		start := time.Now()
		j.gate = j.gate.PowerOn(fmt.Sprintf("qemu-pi-%d", i))
		if err := j.gate.WaitReady(j.daemons, 6*time.Minute); err != nil {
			t.Fatalf("cycle %d: %v\n%s", i, err, j.diagnosis())
		}
		if err := j.clockSet(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		time.Sleep(15 * time.Second)
		d := discovers() - before
		t.Logf("cycle %d: ready and clock set %.1fs after power-on; DHCPDISCOVERs since the power cut: %d", i, time.Since(start).Seconds(), d)
		if d != 1 {
			t.Errorf("cycle %d: %d DHCPDISCOVERs since the power cut (gokrazy's DHCP client restarting?)\n%s", i, d, j.diagnosis())
		}
	}
}
