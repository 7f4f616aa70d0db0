package upsd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationUPSAdminTools: Debian's upsrw and upscmd through our
// server, which passes SET and INSTCMD on to the source (Debian's upsd +
// dummy-ups) with the site's source account; only admin users may.
func TestIntegrationUPSAdminTools(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startUpsd()
	gate := "ups@192.168.1.2"
	if err := netlab.Eventually(20*time.Second, 500*time.Millisecond, func() error {
		out, err := l.gate.Output("upsrw", "-l", gate)
		if err != nil || !strings.Contains(out, "[ups.delay.shutdown]") {
			return fmt.Errorf("upsrw -l: %v\n%s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, _ := l.gate.Output("upsrw", "-l", gate)
	if !strings.Contains(out, "Interval to wait after shutdown with delay command (seconds)") || !strings.Contains(out, "Type: NUMBER") {
		t.Errorf("upsrw -l lacks the description or type:\n%s", out)
	}
	admin := l.password("admin")
	if out, err := l.gate.Run("upsrw", "-s", "ups.delay.shutdown=25", "-u", "admin", "-p", admin, gate); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("upsrw -s as admin: %v\n%s", err, out)
	}
	src := "ups@" + site.UPSSourceLAN.String()
	if err := netlab.Eventually(10*time.Second, 300*time.Millisecond, func() error {
		out, err := l.gate.Output("upsc", src, "ups.delay.shutdown")
		if strings.TrimSpace(out) != "25" {
			return fmt.Errorf("the source's ups.delay.shutdown is %q (%v), want 25", out, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if out, _ := l.gate.Run("upsrw", "-s", "ups.delay.shutdown=30", "-u", "ceph-1", "-p", l.password("ceph-1"), gate); !strings.Contains(out, "ACCESS-DENIED") {
		t.Errorf("upsrw -s as a secondary was not refused:\n%s", out)
	}
	// driver.name is not writable at the source: refused as upsd does.
	if out, _ := l.gate.Run("upsrw", "-s", "driver.name=x", "-u", "admin", "-p", admin, gate); !strings.Contains(out, "READONLY") {
		t.Errorf("upsrw -s of a read-only variable: %s", out)
	}

	out, err := l.gate.Output("upscmd", "-l", gate)
	if err != nil || !strings.Contains(out, "load.off - Turn off the load immediately") {
		t.Fatalf("upscmd -l: %v\n%s", err, out)
	}
	if out, err := l.gate.Run("upscmd", "-u", "admin", "-p", admin, gate, "load.off"); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("upscmd load.off as admin: %v\n%s", err, out)
	}
	if out, _ := l.gate.Run("upscmd", "-u", "admin", "-p", admin, gate, "beeper.enable"); !strings.Contains(out, "CMD-NOT-SUPPORTED") {
		t.Errorf("upscmd of a command the UPS lacks: %s", out)
	}
	if out, _ := l.gate.Run("upscmd", "-u", "ceph-1", "-p", l.password("ceph-1"), gate, "load.off"); !strings.Contains(out, "ACCESS-DENIED") {
		t.Errorf("upscmd as a secondary was not refused:\n%s", out)
	}
	log := l.upsd.Output()
	for _, want := range []string{"variable set\" daemon=upsd user=admin var=ups.delay.shutdown value=25", "instant command run\" daemon=upsd user=admin cmd=load.off"} {
		if !strings.Contains(log, want) {
			t.Errorf("upsd log lacks %q", want)
		}
	}
	if strings.Contains(log, admin) || strings.Contains(log, "sourcepw") {
		t.Error("a password is in upsd's log")
	}
}

// stuckClient logs in as user and never logs out, as a host whose upsmon
// hangs would.
func (l *lab) stuckClient(host, user string) *netlab.Proc {
	return l.s.Server(host).Host.Start("stuck-"+user, nil, "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/192.168.1.2/3493; printf 'USERNAME %s\\nPASSWORD %s\\nLOGIN ups\\n' >&3; sleep 300", user, l.password(user)))
}

// hostOff is how long a simulated host takes from its SHUTDOWNCMD to
// being off the LAN.
const hostOff = time.Second

// upsmons starts Debian's upsmon on the named servers, configured as
// cloud-init configures them; their SHUTDOWNCMD records the moment in the
// returned marker files and takes the host off the LAN hostOff later.
func (l *lab) upsmons(names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = filepath.Join(l.dir, n+".down")
		l.upsmon[n] = l.s.StartUpsmon(l.s.Server(n), "192.168.1.2", "ups", n, l.password(n), site.PowerOffCmd(m[n], hostOff))
	}
	return m
}

// offAt reads when a host went off the LAN (site.PowerOffCmd).
func offAt(marker string) (float64, bool) { return downAt(marker + ".off") }

func (l *lab) waitClients(n int) {
	l.t.Helper()
	if err := netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		out, err := l.gate.Output("upsc", "-c", "ups@192.168.1.2")
		if got := len(strings.Fields(out)); err != nil || got != n {
			return fmt.Errorf("upsc -c lists %d clients (%v), want %d: %q", got, err, n, out)
		}
		return nil
	}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) waitPowerOff(d time.Duration, log func() string) {
	l.t.Helper()
	if err := netlab.Eventually(d, 500*time.Millisecond, func() error {
		if _, err := os.Stat(l.marker); err != nil {
			return fmt.Errorf("the gate did not power off")
		}
		return nil
	}); err != nil {
		l.t.Fatalf("%v\n%s", err, site.Tail(log(), 30))
	}
}

// TestIntegrationUPSRestartMidPlan: upsd stopped (SIGTERM) while the plan
// waits on the compute group resumes the plan at its next start instead of
// starting over or giving up: nothing false is journaled, the gate is not
// powered off by the stop, and the ceph group still goes down after it.
func TestIntegrationUPSRestartMidPlan(t *testing.T) {
	l := newLab(t, labOptions{groups: "    - {name: compute, timeout: 60s}\n    - {name: ceph, timeout: 20s}"})
	l.startUpsd()
	markers := l.upsmons("ceph-1", "ceph-2", "ceph-3")
	stuck := l.stuckClient("compute-1", "compute-1")
	defer stuck.Kill()
	l.waitClients(4)

	l.src.Set("OB LB", 10, 60)
	if err := l.upsd.WaitFor("group shutting down\" daemon=upsd group=compute", 20*time.Second); err != nil {
		t.Fatal(err, site.Tail(l.upsd.Output(), 20))
	}
	time.Sleep(time.Second)
	first := l.upsd
	if err := first.Stop(); err != nil {
		t.Logf("upsd stop: %v", err)
	}
	for n, m := range markers {
		if _, ok := downAt(m); ok {
			t.Fatalf("%s went down while the compute group still had its turn", n)
		}
	}
	if _, err := os.Stat(l.marker); err == nil {
		t.Fatal("stopping upsd mid-plan powered the gate off")
	}
	if !strings.Contains(first.Output(), "shutdown plan interrupted") {
		t.Errorf("no word of the interruption:\n%s", site.Tail(first.Output(), 10))
	}

	l.startUpsd()
	l.waitPowerOff(90*time.Second, l.upsd.Output)
	second := l.upsd.Output()
	for _, want := range []string{"resuming the unfinished shutdown plan", "shutdown plan resumed from the journal", "group done\" daemon=upsd group=ceph"} {
		if !strings.Contains(second, want) {
			t.Errorf("the restarted upsd's log lacks %q", want)
		}
	}
	if strings.Contains(second, "shutdown plan started") {
		t.Error("the restarted upsd started the plan over")
	}
	for n, m := range markers {
		if _, ok := downAt(m); !ok {
			t.Errorf("%s never ran its SHUTDOWNCMD", n)
		}
	}
}

// TestIntegrationUPSPowerBackAndSSH: the plan's SSH side against real
// OpenSSH servers with forced-command keys (k3s drain on compute, ceph's
// noout before the first OSD host goes down, an SSH-only host's shutdown
// command), and mains power coming back while the plan runs: the plan
// completes (documented), the UPS is still told shutdown.return.
func TestIntegrationUPSPowerBackAndSSH(t *testing.T) {
	l := newLab(t, labOptions{
		groups:   "    - {name: compute, timeout: 30s, pre_steps: [k3s-drain]}\n    - {name: ceph, timeout: 20s, pre_steps: [ceph-noout]}",
		shutdown: map[string]string{"ceph-3": "{method: ssh, command: poweroff}"},
	})
	pub, err := os.ReadFile(filepath.Join(l.secrets, "shutdown_ed25519_key.pub"))
	if err != nil {
		t.Fatalf("gate secrets init made no shutdown key: %v", err)
	}
	// The forced command records what was asked and when; drain takes 3 s.
	logs := map[string]string{}
	for _, n := range []string{"compute-1", "ceph-1", "ceph-3"} {
		logs[n] = filepath.Join(l.dir, n+".ssh.log")
		forced := fmt.Sprintf(`command="/bin/sh -c 'echo $(date +%%s.%%N) $SSH_ORIGINAL_COMMAND >> %s; case $SSH_ORIGINAL_COMMAND in kubectl*) sleep 3;; esac'",restrict %s`, logs[n], strings.TrimSpace(string(pub)))
		l.s.StartSSHD(l.s.Server(n), []string{forced})
	}
	l.startUpsd()
	markers := l.upsmons("compute-1", "ceph-1", "ceph-2")
	l.waitClients(3)

	l.src.Set("OB LB", 10, 60)
	if err := l.upsd.WaitFor("group shutting down\" daemon=upsd group=compute", 20*time.Second); err != nil {
		t.Fatal(err, site.Tail(l.upsd.Output(), 20))
	}
	l.src.Set("OL CHRG", 12, 300) // power is back during the drain
	l.waitPowerOff(90*time.Second, l.upsd.Output)

	log := l.upsd.Output()
	for _, want := range []string{
		"mains power is back during the shutdown plan",
		"pre-step done\" daemon=upsd group=compute step=k3s-drain",
		"pre-step done\" daemon=upsd group=ceph step=ceph-noout",
		"host told to shut down\" daemon=upsd group=ceph host=ceph-3 method=ssh",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("upsd log lacks %q", want)
		}
	}
	if !strings.Contains(log, "UPS told to cut its output") && !strings.Contains(log, "ERR CMD-NOT-SUPPORTED") {
		t.Errorf("shutdown.return was not sent after power came back:\n%s", site.Tail(log, 10))
	}
	ran := func(host, cmd string) float64 {
		b, _ := os.ReadFile(logs[host])
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(strings.Join(f[1:], " "), cmd) {
				var at float64
				fmt.Sscan(f[0], &at)
				return at
			}
		}
		t.Errorf("%s: %q never ran over SSH; its log:\n%s", host, cmd, b)
		return 0
	}
	drain := ran("compute-1", "kubectl drain compute-1 ")
	noout := ran("ceph-1", "ceph osd set noout")
	off := ran("ceph-3", "poweroff")
	compute, _ := downAt(markers["compute-1"])
	if compute < drain {
		t.Errorf("compute-1 went down (%.3f) before its drain began (%.3f)", compute, drain)
	}
	for _, n := range []string{"ceph-1", "ceph-2"} {
		at, ok := downAt(markers[n])
		if !ok {
			t.Errorf("%s never ran its SHUTDOWNCMD", n)
		} else if at < noout || at < compute {
			t.Errorf("%s went down (%.3f) before noout (%.3f) or compute-1 (%.3f)", n, at, noout, compute)
		}
	}
	if off < noout {
		t.Errorf("ceph-3's poweroff (%.3f) before noout (%.3f)", off, noout)
	}
}
