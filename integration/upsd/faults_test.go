package upsd

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gate/integration/site"
)

// threeGroups puts ceph-3 in a group of its own, last.
var threeGroups = labOptions{
	groups:   "    - {name: compute, timeout: 20s}\n    - {name: ceph, timeout: 20s}\n    - {name: mons, timeout: 20s}",
	shutdown: map[string]string{"ceph-3": "{group: mons}"},
}

// inOrder checks that every host of a group was off the LAN before any
// host of the next group began its shutdown (its SHUTDOWNCMD ran), and
// reports the per-group times relative to start.
func inOrder(t *testing.T, markers map[string]string, groups [][]string, start time.Time) {
	t.Helper()
	t0 := float64(start.UnixNano()) / 1e9
	lastOff := 0.0
	prev := ""
	for _, g := range groups {
		first, off := 0.0, 0.0
		for _, h := range g {
			at, ok := downAt(markers[h])
			if !ok {
				t.Errorf("%s never ran its SHUTDOWNCMD", h)
				continue
			}
			o, ok := offAt(markers[h])
			if !ok {
				t.Errorf("%s never went off the LAN", h)
				continue
			}
			if first == 0 || at < first {
				first = at
			}
			off = max(off, o)
			if lastOff > 0 && at < lastOff {
				t.Errorf("%s began its shutdown at +%.3fs, before the last host of %s was off (+%.3fs)", h, at-t0, prev, lastOff-t0)
			}
		}
		t.Logf("group %v: first SHUTDOWNCMD +%.3fs, last host off +%.3fs", g, first-t0, off-t0)
		lastOff, prev = off, strings.Join(g, ",")
	}
}

// TestIntegrationUPSSourceLostKeepsOrder: the UPS source (Debian's upsd)
// dies while the UPS is on battery; the gate's deadtime starts the plan,
// and the secondaries (upsmon as cloud-init installs it) keep seeing the
// last data plus their own group's FSD: three groups go down one after
// the other, each host off the LAN before the next group starts, and no
// upsmon ever sees stale data.
func TestIntegrationUPSSourceLostKeepsOrder(t *testing.T) {
	l := newLab(t, threeGroups)
	l.startUpsd()
	markers := l.secondaries()
	l.src.Set("OB DISCHRG", 70, 1000)
	time.Sleep(4 * time.Second) // every upsmon has seen OB
	start := time.Now()
	l.src.Upsd.Kill()
	l.src.Driver.Kill()
	l.waitPowerOff(120*time.Second, l.upsd.Output)
	if log := l.upsd.Output(); !strings.Contains(log, "no data for") {
		t.Errorf("the plan's reason is not the lost source:\n%s", site.Tail(log, 20))
	}
	inOrder(t, markers, [][]string{{"compute-1"}, {"ceph-1", "ceph-2"}, {"ceph-3"}}, start)
	for _, sv := range l.s.Servers {
		// upsmon's words for a UPS whose data went stale or dead.
		if p := l.upsmon[sv.Name].Output(); strings.Contains(p, "stale") || strings.Contains(p, "dead") {
			t.Errorf("%s's upsmon saw stale data:\n%s", sv.Name, site.Tail(p, 10))
		}
	}
}

// TestIntegrationUPSFSDFromAdmin: an admin NUT client sends FSD while the
// UPS is on line power: the ordered plan runs (compute off the LAN before
// ceph starts), and once it is over FSD is not left set: a secondary that
// boots again and reconnects is not shut down again.
func TestIntegrationUPSFSDFromAdmin(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startUpsd()
	markers := l.secondaries()
	start := time.Now()
	out, err := l.gate.Run("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/192.168.1.2/3493; printf 'USERNAME admin\\nPASSWORD %s\\nFSD ups\\nLOGOUT\\n' >&3; timeout 5 cat <&3", l.password("admin")))
	if err != nil || !strings.Contains(out, "OK FSD-SET") {
		t.Fatalf("FSD as admin: %v\n%s", err, out)
	}
	l.waitPowerOff(90*time.Second, l.upsd.Output)
	inOrder(t, markers, [][]string{{"compute-1"}, {"ceph-1", "ceph-2", "ceph-3"}}, start)
	if log := l.upsd.Output(); !strings.Contains(log, "shutdown plan started\" daemon=upsd reason=\"FSD set by NUT client admin\"") {
		t.Errorf("the plan did not start for the admin's FSD:\n%s", site.Tail(log, 20))
	}
	if err := l.upsd.WaitFor("FSD cleared for the secondaries", 10*time.Second); err != nil {
		t.Fatal(err, site.Tail(l.upsd.Output(), 10))
	}
	if st, _ := l.gate.Output("upsc", "ups@192.168.1.2", "ups.status"); strings.Contains(st, "FSD") {
		t.Errorf("ups.status after the plan: %q", st)
	}
	// compute-1 boots again: its upsmon reconnects and stays up.
	sv := l.s.Server("compute-1")
	l.s.PowerOn(sv)
	os.Remove(markers["compute-1"])
	l.s.StartUpsmon(sv, "192.168.1.2", "ups", "compute-1", l.password("compute-1"), site.MarkCmd(markers["compute-1"]))
	l.waitClients(1)
	time.Sleep(8 * time.Second) // upsmon polls every second
	if _, ok := downAt(markers["compute-1"]); ok {
		t.Fatal("a secondary that reconnected after the plan was shut down again")
	}
}

// TestIntegrationUPSLoggedOutButAnswering: compute-1's upsmon logs out (it
// runs its SHUTDOWNCMD) but the host keeps answering on the LAN: the ceph
// group waits for it up to the compute group's timeout, and the log says
// why.
func TestIntegrationUPSLoggedOutButAnswering(t *testing.T) {
	l := newLab(t, labOptions{groups: "    - {name: compute, timeout: 10s}\n    - {name: ceph, timeout: 20s}"})
	l.startUpsd()
	markers := l.upsmons("ceph-1", "ceph-2", "ceph-3")
	markers["compute-1"] = l.dir + "/compute-1.down"
	l.upsmon["compute-1"] = l.s.StartUpsmon(l.s.Server("compute-1"), "192.168.1.2", "ups", "compute-1", l.password("compute-1"), site.MarkCmd(markers["compute-1"]))
	l.waitClients(4)
	l.src.Set("OB LB", 10, 60)
	l.waitPowerOff(90*time.Second, l.upsd.Output)
	compute, ok := downAt(markers["compute-1"])
	if !ok {
		t.Fatal("compute-1 never ran its SHUTDOWNCMD")
	}
	for _, n := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		at, ok := downAt(markers[n])
		if !ok {
			t.Fatalf("%s never ran its SHUTDOWNCMD", n)
		}
		// The group's timeout runs from its start, before compute-1's
		// SHUTDOWNCMD: at least 10 s less the time FSD took to reach it.
		if at-compute < 7 {
			t.Errorf("%s began its shutdown %.3fs after compute-1's SHUTDOWNCMD, while compute-1 still answered", n, at-compute)
		}
	}
	log := l.upsd.Output()
	for _, want := range []string{
		"host's upsmon logged out (its shutdown began)\" daemon=upsd group=compute host=compute-1",
		"host did not go down in time (it still answers on the LAN); going on\" daemon=upsd group=compute host=compute-1",
		"host down (no answer on the LAN)\" daemon=upsd group=ceph host=ceph-1",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("upsd log lacks %q", want)
		}
	}
}
