// Package upsd tests cmd/upsd with real NUT peers: Debian's upsd and
// dummy-ups as the UPS, Debian's upsc reading through our server, and
// Debian's upsmon as secondaries on the site's servers, shut down group by
// group.
package upsd

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

type lab struct {
	t       *testing.T
	s       *site.Site
	src     *site.NUTSource
	gate    *netlab.Host
	dir     string
	site    string
	secrets string
	upsd    *netlab.Proc
	marker  string // the gate's power-off marker
	upsmon  map[string]*netlab.Proc
}

// labOptions change the lab's site file.
type labOptions struct {
	// groups replaces the shutdown_groups lines.
	groups string
	// shutdown gives a host's shutdown: line ("{method: ssh, ...}").
	shutdown map[string]string
	// ups adds lines to the ups: section ("  return: {...}\n").
	ups string
}

func newLab(t *testing.T, o labOptions) *lab {
	netlab.Require(t, "upsc", "/lib/nut/upsmon", "/lib/nut/upsd", "/lib/nut/dummy-ups")
	s := site.New(t, site.Options{})
	l := &lab{t: t, s: s, dir: s.Dir, upsmon: map[string]*netlab.Proc{}}
	l.src = s.StartNUTSource("mon", "sourcepw")
	l.gate = s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", l.gate, "eth0", "192.168.1.2/24")
	l.secrets = filepath.Join(l.dir, "secrets")
	os.MkdirAll(l.secrets, 0o700)
	os.WriteFile(filepath.Join(l.secrets, "nut-source"), []byte("sourcepw"), 0o600)
	var users, hosts strings.Builder
	for _, sv := range s.Servers {
		fmt.Fprintf(&users, "    - {name: %s, password: file:nut-%s}\n", sv.Name, sv.Name)
		sh := ""
		if o.shutdown[sv.Name] != "" {
			sh = ", shutdown: " + o.shutdown[sv.Name]
		}
		fmt.Fprintf(&hosts, "  - {name: %s, macs: [%q], ip: %s, role: %s%s}\n", sv.Name, sv.MAC, sv.IP, sv.Role, sh)
	}
	groups := o.groups
	if groups == "" {
		groups = "    - {name: compute, timeout: 20s}\n    - {name: ceph, timeout: 15s}"
	}
	l.site = filepath.Join(l.dir, "site.yaml")
	os.WriteFile(l.site, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-1, address: 192.168.1.2/24}
ups:
  source: nut://%s/ups
  source_user: mon
  source_password: file:nut-source
  listen: ["192.168.1.2:3493"]
  poll_interval: 1s
  deadtime: 6s
%s  users:
%s    - {name: admin, password: file:nut-admin, role: admin}
  shutdown_groups:
%s
roles: {ceph: {installer: {kernel: "http://192.168.1.2/k"}}, compute: {installer: {kernel: "http://192.168.1.2/k"}}}
hosts:
%s`, site.UPSSourceLAN, o.ups, users.String(), groups, hosts.String())), 0o644)
	if out, err := l.gate.Run(netlab.Build(t, "gate/gate"), "secrets", "init", "-c", l.site); err != nil {
		t.Fatal(out, err)
	}
	l.marker = filepath.Join(l.dir, "gate.poweroff")
	return l
}

func (l *lab) startUpsd() {
	l.upsd = l.gate.Start("upsd", nil, netlab.Build(l.t, "gate/cmd/upsd"), "-config", l.site, "-secrets", l.secrets,
		"-state", filepath.Join(l.dir, "state"), "-metrics", "", "-poweroff-marker", l.marker)
	if err := l.upsd.WaitFor("msg=ready", 15*time.Second); err != nil {
		l.t.Fatal(err, l.upsd.Output())
	}
}

func (l *lab) password(user string) string {
	b, _ := os.ReadFile(filepath.Join(l.secrets, "nut-"+user))
	return strings.TrimSpace(string(b))
}

// secondaries starts upsmon on every server and waits until all are
// logged in; it returns marker paths.
func (l *lab) secondaries() map[string]string {
	var names []string
	for _, sv := range l.s.Servers {
		names = append(names, sv.Name)
	}
	m := l.upsmons(names...)
	l.waitClients(len(names))
	return m
}

func downAt(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return f, err == nil
}

func TestIntegrationUPSOrderedShutdown(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startUpsd()
	markers := l.secondaries()

	// Debian's upsc reads the UPS through our server.
	out, err := l.gate.Output("upsc", "ups@192.168.1.2")
	if err != nil || !strings.Contains(out, "ups.status: OL") || !strings.Contains(out, "ups.mfr: EATON") {
		t.Fatalf("upsc through our upsd: %v\n%s", err, out)
	}
	// On battery: nothing happens yet.
	l.src.Set("OB DISCHRG", 80, 1200)
	time.Sleep(4 * time.Second)
	for name, m := range markers {
		if _, ok := downAt(m); ok {
			t.Fatalf("%s shut down while merely on battery", name)
		}
	}
	// Low battery: the plan runs.
	start := time.Now()
	l.src.Set("OB LB", 10, 60)
	if err := netlab.Eventually(90*time.Second, 500*time.Millisecond, func() error {
		if _, err := os.Stat(l.marker); err != nil {
			return fmt.Errorf("the gate did not power off")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(l.upsd.Output(), 30))
	}
	t.Logf("OB LB to the gate's power-off: %s", time.Since(start).Round(time.Millisecond))
	compute, ok := downAt(markers["compute-1"])
	if !ok {
		t.Fatal("compute-1 never ran its SHUTDOWNCMD")
	}
	for _, name := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		at, ok := downAt(markers[name])
		if !ok {
			t.Fatalf("%s never ran its SHUTDOWNCMD", name)
		}
		if at < compute {
			t.Errorf("%s went down (%.3f) before compute-1 (%.3f)", name, at, compute)
		}
	}
	log := l.upsd.Output()
	for _, want := range []string{"shutdown plan started", "FSD shown to the group's secondaries\" daemon=upsd group=compute", "group=ceph", "the gate powers itself off"} {
		if !strings.Contains(log, want) {
			t.Errorf("upsd log lacks %q", want)
		}
	}
	// The UPS is told to power off; Debian's dummy-ups has no
	// shutdown.return, and its upsd's refusal is reported.
	if !strings.Contains(log, "UPS told to cut its output") && !strings.Contains(log, "(shutdown.return) failed; the gate powers off anyway\" daemon=upsd err=\"NUT INSTCMD: ERR CMD-NOT-SUPPORTED") {
		t.Errorf("shutdown.return was not sent to the source:\n%s", site.Tail(log, 10))
	}

	// The next boot finds the finished plan's journal: archived, not re-run.
	l.upsd.Stop()
	os.Remove(l.marker)
	l.src.Set("OL CHRG", 15, 300)
	if err := netlab.Eventually(20*time.Second, 300*time.Millisecond, func() error {
		if st, _ := l.src.Status(); st != "OL CHRG" {
			return fmt.Errorf("source still %q", st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l.startUpsd()
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(l.marker); err == nil {
		t.Fatal("a leftover plan powered the gate off again at the next start")
	}
	if !strings.Contains(l.upsd.Output(), "not acted on again") {
		t.Error("no word of the archived journal")
	}
}

// TestIntegrationUPSFaults: the source lost while on line power (nothing
// happens); a secondary that never logs out (its group's timeout, then the
// plan goes on); the source lost while on battery (critical after DEADTIME).
func TestIntegrationUPSFaults(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startUpsd()
	stuck := l.stuckClient("ceph-3", "ceph-3") // logs in and never goes away
	defer stuck.Kill()

	l.src.Driver.Signal(syscall.SIGSTOP) // the source's data goes stale
	time.Sleep(9 * time.Second)
	if _, err := os.Stat(l.marker); err == nil || strings.Contains(l.upsd.Output(), "plan started") {
		t.Fatal("lost data while on line power started a shutdown")
	}
	l.src.Driver.Signal(syscall.SIGCONT)
	l.src.Set("OB DISCHRG", 70, 1000)
	time.Sleep(3 * time.Second)
	start := time.Now()
	l.src.Upsd.Kill() // the source is gone while on battery
	if err := netlab.Eventually(90*time.Second, 500*time.Millisecond, func() error {
		if _, err := os.Stat(l.marker); err != nil {
			return fmt.Errorf("no power-off")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(l.upsd.Output(), 30))
	}
	log := l.upsd.Output()
	if !strings.Contains(log, "no data for") {
		t.Errorf("the reason was not the lost source:\n%s", site.Tail(log, 20))
	}
	if !strings.Contains(log, "host did not go down in time (its upsmon is still logged in); going on\" daemon=upsd group=ceph host=ceph-3") {
		t.Errorf("the stuck secondary was not reported:\n%s", site.Tail(log, 20))
	}
	t.Logf("source lost while on battery → power-off in %s", time.Since(start).Round(time.Millisecond))
}

// TestSideBySideUPS: from the source's OB LB to the last secondary's
// SHUTDOWNCMD, with our upsd as primary and with Debian's upsmon as
// primary (its defaults), on the same dummy-ups and the same secondaries:
// Debian's upsmon configured as cloud-init installs it (nocloud), each
// host off the LAN hostOff after its SHUTDOWNCMD. Ours keeps the order
// (compute off the LAN before ceph is shown FSD); Debian's primary shows
// FSD to every host at once. Runs rounds of each, alternating; per-group
// times are printed for ours. The power fails at a random moment (3 s,
// then up to 5 s more: Debian's primary polls every 5 s, ours every 2 s,
// the source updates every 2 s), so that neither side's polls are in step
// with it.
func TestSideBySideUPS(t *testing.T) {
	netlab.Bench(t, "upsc", "/lib/nut/upsmon")
	const rounds = 8
	settle := func() { time.Sleep(3*time.Second + rand.N(5*time.Second)) }
	wait := func(markers map[string]string) {
		if err := netlab.Eventually(120*time.Second, 100*time.Millisecond, func() error {
			for n, m := range markers {
				if _, ok := downAt(m); !ok {
					return fmt.Errorf("%s not down", n)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	since := func(start time.Time, at float64) float64 { return at - float64(start.UnixNano())/1e9 }
	var ours, debian, debianFirst, computeCmd, computeOff, cephCmd []float64
	for range rounds {
		// Ours.
		l := newLab(t, labOptions{})
		l.startUpsd()
		markers := l.secondaries()
		settle()
		start := time.Now()
		l.src.Set("OB LB", 10, 60)
		wait(markers)
		last, firstCeph := 0.0, 1e18 // ours
		for n, m := range markers {
			at, _ := downAt(m)
			last = max(last, since(start, at))
			if n != "compute-1" {
				firstCeph = min(firstCeph, since(start, at))
			}
		}
		c, _ := downAt(markers["compute-1"])
		off, _ := offAt(markers["compute-1"])
		ours, computeCmd, computeOff, cephCmd = append(ours, last), append(computeCmd, since(start, c)), append(computeOff, since(start, off)), append(cephCmd, firstCeph)

		// Debian's upsmon as primary, the secondaries on the source's upsd.
		d := newLab(t, labOptions{})
		dm := map[string]string{}
		for _, sv := range d.s.Servers {
			dm[sv.Name] = filepath.Join(d.dir, sv.Name+".down")
			d.s.StartUpsmon(sv, site.UPSSourceLAN.String(), "ups", "mon", "sourcepw", site.PowerOffCmd(dm[sv.Name], hostOff))
		}
		dir := filepath.Join(d.dir, "primary")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "upsmon.conf"), []byte(fmt.Sprintf("MONITOR ups@%s 1 mon sourcepw primary\nMINSUPPLIES 1\nSHUTDOWNCMD \"/bin/sh -c 'date +%%s.%%N > %s/primary.down'\"\nPOWERDOWNFLAG %s/killpower\nRUN_AS_USER root\n", site.UPSSourceLAN, dir, dir)), 0o640)
		os.WriteFile(filepath.Join(dir, "nut.conf"), []byte("MODE=netclient\n"), 0o640)
		d.gate.Start("upsmon-primary", []string{"NUT_CONFPATH=" + dir, "NUT_STATEPATH=" + dir}, "sh", "-c", "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && exec /lib/nut/upsmon -D -F -u root")
		if err := netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
			out, _ := d.src.Host.Output("upsc", "-c", "ups@"+site.UPSSourceLAN.String())
			if n := len(strings.Fields(out)); n != 5 {
				return fmt.Errorf("%d clients on the source", n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		settle()
		start = time.Now()
		d.src.Set("OB LB", 10, 60)
		wait(dm)
		last, first := 0.0, 1e18
		for _, m := range dm {
			at, _ := downAt(m)
			last, first = max(last, since(start, at)), min(first, since(start, at))
		}
		debian, debianFirst = append(debian, last), append(debianFirst, first)
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	t.Logf("ours %v, Debian %v", ours, debian)
	netlab.Report(t, "UPS OB LB to compute-1's SHUTDOWNCMD, gate upsd (mean)", mean(computeCmd), "s")
	netlab.Report(t, "UPS OB LB to the first SHUTDOWNCMD, Debian upsmon primary (mean)", mean(debianFirst), "s")
	netlab.Report(t, "UPS first SHUTDOWNCMD ratio (ours/Debian)", mean(computeCmd)/mean(debianFirst), "")
	netlab.Report(t, "UPS OB LB to compute-1 off the LAN, gate upsd (mean)", mean(computeOff), "s")
	netlab.Report(t, "UPS OB LB to the first ceph SHUTDOWNCMD, gate upsd (mean)", mean(cephCmd), "s")
	netlab.Report(t, "UPS OB LB to the last secondary's SHUTDOWNCMD, gate upsd, ordered (mean)", mean(ours), "s")
	netlab.Report(t, "UPS OB LB to the last secondary's SHUTDOWNCMD, Debian upsmon primary, all at once (mean)", mean(debian), "s")
	netlab.Report(t, "UPS ratio (ours/Debian)", mean(ours)/mean(debian), "")
}
