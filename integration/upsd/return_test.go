package upsd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
	"gate/internal/powerstate"
)

// wakeListener is a Wake-on-LAN NIC for the site's servers: a raw packet
// socket (Debian's Python, not our code) on the LAN switch's bridge that
// prints "WAKE <mac>" for each frame carrying a server's magic pattern
// (six 0xff bytes, then the MAC sixteen times), as a sleeping NIC scans
// every frame.
const wakeListener = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("br0", 0))
pats = {m: b"\xff" * 6 + bytes.fromhex(m.replace(":", "")) * 16 for m in sys.argv[1:]}
print("listening", flush=True)
while True:
    f = s.recv(65535)
    for m, p in pats.items():
        if p in f:
            print("WAKE", m, flush=True)
`

// outage is a lab after its shutdown plan, at the gate's next boot: every
// server off the LAN, their NICs listening for magic packets.
type outage struct {
	*lab
	sshLogs map[string]string // host → its forced command's log
	markers map[string]string
	lst     *netlab.Proc
	mu      sync.Mutex
	woken   map[string]float64 // host → first magic packet seen (powered on then)
}

// newOutage runs the shutdown plan in a lab with k3s-drain and ceph-noout
// (forced-command sshd on compute-1 and ceph-1), stops upsd as the gate
// powers off, puts the source on line power at charge, and starts the
// servers' Wake-on-LAN NICs: a host in sleepers never wakes.
func newOutage(t *testing.T, ret string, charge int, sleepers ...string) *outage {
	l := newLab(t, labOptions{
		groups: "    - {name: compute, timeout: 20s, pre_steps: [k3s-drain]}\n    - {name: ceph, timeout: 20s, pre_steps: [ceph-noout]}",
		ups:    "  return: " + ret + "\n",
	})
	netlab.Require(t, "/usr/bin/python3")
	o := &outage{lab: l, sshLogs: map[string]string{}, woken: map[string]float64{}}
	pub, err := os.ReadFile(filepath.Join(l.secrets, "shutdown_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"compute-1", "ceph-1"} {
		o.sshLogs[n] = filepath.Join(l.dir, n+".ssh.log")
		forced := fmt.Sprintf(`command="/bin/sh -c 'echo $(date +%%s.%%N) $SSH_ORIGINAL_COMMAND >> %s'",restrict %s`, o.sshLogs[n], strings.TrimSpace(string(pub)))
		l.s.StartSSHD(l.s.Server(n), []string{forced})
	}
	l.startUpsd()
	markers := l.secondaries()
	o.markers = markers
	l.src.Set("OB LB", 10, 60)
	l.waitPowerOff(90*time.Second, l.upsd.Output)
	for n, m := range markers {
		if _, ok := offAt(m); !ok {
			t.Fatalf("%s did not go off the LAN", n)
		}
	}
	l.upsd.Stop()
	o.setSource("OL CHRG", charge)
	var macs []string
	byMAC := map[string]site.Server{}
	for _, sv := range l.s.Servers {
		if !slices.Contains(sleepers, sv.Name) {
			macs = append(macs, sv.MAC)
			byMAC[sv.MAC] = sv
		}
	}
	o.lst = l.s.Switch.Start("wol", nil, append([]string{"/usr/bin/python3", "-c", wakeListener}, macs...)...)
	if err := o.lst.WaitFor("listening", 10*time.Second); err != nil {
		t.Fatal(err, o.lst.Output())
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() { // the NICs: power a host on at its first magic packet
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			sc := bufio.NewScanner(strings.NewReader(o.lst.Output()))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 2 || f[len(f)-2] != "WAKE" {
					continue
				}
				o.boot(byMAC[f[len(f)-1]])
			}
		}
	}()
	return o
}

// boot powers sv on (once): its link up, its upsmon started.
func (o *outage) boot(sv site.Server) {
	o.mu.Lock()
	_, done := o.woken[sv.Name]
	if !done {
		o.woken[sv.Name] = now()
	}
	o.mu.Unlock()
	if done {
		return
	}
	o.s.PowerOn(sv)
	os.Remove(o.markers[sv.Name])
	o.upsmon[sv.Name] = o.s.StartUpsmon(sv, "192.168.1.2", "ups", sv.Name, o.password(sv.Name), site.PowerOffCmd(o.markers[sv.Name], hostOff))
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// setSource sets the UPS and waits until its upsd serves the change.
func (o *outage) setSource(status string, charge int) {
	o.t.Helper()
	o.src.Set(status, charge, 600)
	if err := netlab.Eventually(20*time.Second, 300*time.Millisecond, func() error {
		if st, _ := o.src.Status(); st != status {
			return fmt.Errorf("source still %q", st)
		}
		return nil
	}); err != nil {
		o.t.Fatal(err)
	}
}

// ran returns when cmd ran over SSH on host (0 if it did not) and how
// many times.
func (o *outage) ran(host, cmd string) (float64, int) {
	b, _ := os.ReadFile(o.sshLogs[host])
	at, n := 0.0, 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.Join(f[1:], " ") == cmd {
			if n == 0 {
				fmt.Sscan(f[0], &at)
			}
			n++
		}
	}
	return at, n
}

func (o *outage) wokenAt(host string) (float64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.woken[host]
	return at, ok
}

// TestIntegrationUPSReturn: after the shutdown plan, the gate boots again
// (upsd restarted with the finished journal) with mains back at the NUT
// source but the battery low: it waits for ups.return.min_charge, then
// wakes the ceph hosts (Wake-on-LAN seen by a raw socket on the LAN; a
// host powers on only when its magic packet arrives: its link up, its
// upsmon started), unsets noout over SSH once the last ceph host is back,
// only then wakes compute-1 and uncordons it; each exactly once.
func TestIntegrationUPSReturn(t *testing.T) {
	o := newOutage(t, "{min_charge: 50, wake_after: 10s, wake_tries: 3}", 30)
	o.startUpsd()
	time.Sleep(5 * time.Second)
	for _, sv := range o.s.Servers {
		if _, ok := o.wokenAt(sv.Name); ok {
			t.Errorf("%s woken while the battery was at 30%%", sv.Name)
		}
	}
	charged := now()
	o.setSource("OL CHRG", 80)
	if err := o.upsd.WaitFor("return plan done", 120*time.Second); err != nil {
		t.Fatal(err, site.Tail(o.upsd.Output(), 30))
	}
	unset, n := o.ran("ceph-1", "ceph osd unset noout")
	uncordon, m := o.ran("compute-1", "kubectl uncordon compute-1")
	if n != 1 || m != 1 {
		t.Errorf("unset noout ran %d times, uncordon %d times: want once each", n, m)
	}
	lastCeph := 0.0
	for _, n := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		at, ok := o.wokenAt(n)
		if !ok {
			t.Fatalf("%s was never woken", n)
		}
		if at < charged {
			t.Errorf("%s woken before the battery reached min_charge", n)
		}
		lastCeph = max(lastCeph, at)
	}
	compute, ok := o.wokenAt("compute-1")
	switch {
	case !ok:
		t.Fatal("compute-1 was never woken")
	case unset < lastCeph:
		t.Errorf("noout unset (%.3f) before the last ceph host was back (%.3f)", unset, lastCeph)
	case compute < unset:
		t.Errorf("compute-1 woken (%.3f) before the ceph group was back and noout unset (%.3f)", compute, unset)
	case uncordon < compute:
		t.Errorf("compute-1 uncordoned (%.3f) before it was back (%.3f)", uncordon, compute)
	}
	t.Logf("charged → ceph back %.1fs, noout unset %.1fs, compute-1 woken %.1fs, uncordoned %.1fs", lastCeph-charged, unset-charged, compute-charged, uncordon-charged)
	ps, err := powerstate.Read(filepath.Join(o.dir, "state", "power.json"))
	if err != nil || ps.Return != "done" || ps.Hosts["ceph-2"].State != "up" || ps.Hosts["compute-1"].State != "up" {
		t.Errorf("power state for gate hosts: %+v %v", ps, err)
	}
}

// TestIntegrationUPSReturnMissingAndRestart: ceph-3 never wakes: noout
// stays set (and the log says why), compute still comes back and is
// uncordoned, power.json says ceph-3 is missing. upsd is restarted in the
// middle (after the ceph group): the return plan resumes from its journal
// and runs nothing twice.
func TestIntegrationUPSReturnMissingAndRestart(t *testing.T) {
	o := newOutage(t, "{min_charge: 0, wake_after: 10s, wake_tries: 1}", 90, "ceph-3")
	o.startUpsd()
	if err := o.upsd.WaitFor("pre-step left in place\" daemon=upsd group=ceph step=ceph-noout", 90*time.Second); err != nil {
		t.Fatal(err, site.Tail(o.upsd.Output(), 30))
	}
	first := o.upsd
	first.Stop()
	o.startUpsd()
	if err := o.upsd.WaitFor("return plan done", 90*time.Second); err != nil {
		t.Fatal(err, site.Tail(o.upsd.Output(), 30))
	}
	if _, n := o.ran("ceph-1", "ceph osd unset noout"); n != 0 {
		t.Errorf("noout unset with ceph-3 missing (%d times)", n)
	}
	if _, n := o.ran("compute-1", "kubectl uncordon compute-1"); n != 1 {
		t.Errorf("compute-1 uncordoned %d times, want once", n)
	}
	for _, want := range []string{"host did not come back; going on without it\" daemon=upsd group=ceph host=ceph-3", "ceph-3] not back: unsetting noout with an OSD host down would start a rebalance"} {
		if !strings.Contains(first.Output(), want) {
			t.Errorf("first upsd's log lacks %q", want)
		}
	}
	second := o.upsd.Output()
	if !strings.Contains(second, "resuming the unfinished return plan") || strings.Contains(second, "host woken (Wake-on-LAN)\" daemon=upsd group=ceph") {
		t.Errorf("the restarted upsd did not resume, or woke ceph again:\n%s", site.Tail(second, 20))
	}
	ps, err := powerstate.Read(filepath.Join(o.dir, "state", "power.json"))
	if err != nil || ps.Hosts["ceph-3"].State != "missing" || ps.Hosts["compute-1"].State != "up" {
		t.Errorf("power state for gate hosts: %+v %v", ps, err)
	}
}

// TestIntegrationUPSReturnSecondCut: the power fails again while the
// return plan waits for the ceph hosts: the shutdown plan takes over (the
// return plan is abandoned and archived, never resumed), and it runs to
// the gate's power-off.
func TestIntegrationUPSReturnSecondCut(t *testing.T) {
	o := newOutage(t, "{min_charge: 0, wake_after: 10s, wake_tries: 3}", 90, "ceph-1", "ceph-2", "ceph-3")
	os.Remove(o.marker)
	o.startUpsd()
	if err := o.upsd.WaitFor("return plan started", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	o.src.Set("OB LB", 9, 60)
	o.waitPowerOff(90*time.Second, o.upsd.Output)
	log := o.upsd.Output()
	for _, want := range []string{"return plan abandoned\" daemon=upsd reason=\"a new cut: on battery and the UPS reports low battery\"", "shutdown plan started"} {
		if !strings.Contains(log, want) {
			t.Errorf("upsd log lacks %q", want)
		}
	}
	if _, ok := o.wokenAt("compute-1"); ok {
		t.Error("compute-1 was woken while ceph was still down")
	}
	if _, err := os.Stat(filepath.Join(o.dir, "state", "return.journal")); err == nil {
		t.Error("the abandoned return plan's journal was left to resume")
	}
}

// TestSideBySideUPSReturn: mains back → the last host up and the
// pre-steps undone, with hosts that power on by themselves when the UPS
// output returns (BIOS "restore on AC power loss"), and with the
// Wake-on-LAN path (wake_after 10s, the shortest the site file allows).
// No anchor does the way back (NUT and apcupsd stop at the shutdown):
// the figures stand alone.
func TestSideBySideUPSReturn(t *testing.T) {
	netlab.Bench(t, "upsc", "/lib/nut/upsmon", "/usr/bin/python3")
	run := func(self bool) float64 {
		var sleepers []string
		if self {
			sleepers = []string{"ceph-1", "ceph-2", "ceph-3", "compute-1"}
		}
		o := newOutage(t, "{min_charge: 0, wake_after: 10s, wake_tries: 3}", 90, sleepers...)
		start := time.Now()
		if self {
			for _, sv := range o.s.Servers {
				o.boot(sv)
			}
		}
		o.startUpsd()
		if err := o.upsd.WaitFor("return plan done", 120*time.Second); err != nil {
			t.Fatal(err, site.Tail(o.upsd.Output(), 20))
		}
		return time.Since(start).Seconds()
	}
	self := run(true)
	woken := run(false)
	netlab.Report(t, "UPS return: mains back to the last host up and the pre-steps undone, hosts power on by themselves", self, "s")
	netlab.Report(t, "UPS return: mains back to the last host up and the pre-steps undone, Wake-on-LAN (wake_after 10s)", woken, "s")
}
