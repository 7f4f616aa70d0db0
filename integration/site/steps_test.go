package site

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/publicip"
)

// Run is one play of the journey: where the gate runs and how it gets its
// address.
type Run struct {
	Name string
	// Arch arm64 is the real Pi image (`gate image --arch arm64`, what
	// `make image` writes) under qemu-system-aarch64 -M raspi3b: no RTC,
	// the hub by name through the box's DNS, NTP from chrony on the
	// simulated internet. amd64 is the twin (a VM with a clock).
	Arch    string
	Address string // gate.address: "static" (192.168.1.2/24) or "dhcp"
	// IPv6: the site is dual stack (the box announces a /64, the internet
	// has IPv6) and IPv6-first: the hub's name has only an AAAA record, so
	// the tunnel runs over IPv6; dyndns publishes the AAAA record from the
	// gate's interface with ipv6_suffix.
	IPv6 bool
	// Reimage: the amd64 twin's play: boot, then the re-imaging step only
	// (PXE, the imager, a Debian install: too slow beside an emulated Pi).
	Reimage bool
	// Status: the site also has the status page (statusd, scraping every
	// daemon's /metrics), as the example site does (the soak's site).
	Status bool
}

// Runs are the plays of `make e2e`, in order.
var Runs = []Run{
	{Name: "pi-static", Arch: "arm64", Address: "static"},
	{Name: "pi-dhcp-dualstack", Arch: "arm64", Address: "dhcp", IPv6: true},
	{Name: "twin-reimage", Arch: "amd64", Address: "static", Reimage: true},
}

// Names the box's DNS answers in the simulated site.
const (
	hubName = "vps1.example.net"
	ntpName = "ntp.example.net"
	// gokrazy's ntp asks N.gokrazy.pool.ntp.org when the site names no
	// server: the box answers the pool with the same chrony.
	poolName = "pool.ntp.org"
)

// journey is the state the steps share.
type journey struct {
	run      Run
	t        *testing.T
	s        *Site
	dir      string
	gateCLI  string
	siteFile string
	secrets  string
	adminKey string // private key file of the admin
	hubKey   string // the hub's WireGuard private key file
	hubPub   string
	hubIface string
	hub      *Hub
	admin    *netlab.Host
	gate     *GateVM
	daemons  []string
	bind     *BIND
	nut      *NUTSource
	partuuid string // the gate image's root, to boot it again
	ntp      *NTP
	wan      netip.Addr // the box's public address now

	// The first cold boot's figures (make bench): QEMU started, the kernel
	// ran /gokrazy/init, every daemon ready, the hub reached the gate.
	poweredOn, initAt, readyAt, tunnelAt time.Time

	golden *Golden // the golden image the spare host's role writes
	// mainsBackAt is when step 7 gave the power back.
	mainsBackAt time.Time
	goldenErr   error
}

const (
	gateMAC = "52:54:00:00:00:02"
	// The emulated Pi's USB NIC: the Raspberry Pi Foundation's OUI, as
	// the Pi's own NIC has. With a locally administered address (52:54:…)
	// Linux names a CDC Ethernet NIC usb0 instead of eth0.
	piMAC      = "b8:27:eb:00:00:02"
	adminAddr  = "203.0.113.50"
	tunnelGate = "10.99.0.2"
	tunnelHub  = "10.99.0.1"

	// The fifth host, a QEMU machine re-imaged over PXE in step 6; its
	// role's golden image is served by a mirror on the LAN.
	spareName  = "ceph-4"
	spareMAC   = "52:54:00:00:01:04"
	spareIP    = "192.168.1.14"
	mirrorAddr = "192.168.1.40"
	mirrorPort = 8000
)

// journeySteps are the steps of run. A step whose daemon (or whose
// journey code) has not landed is reported MISSING.
func journeySteps(t *testing.T, run Run) []Step {
	j := &journey{t: t, run: run}
	if run.Reimage {
		return []Step{
			{Name: "1. boot (amd64 twin): every service ready", Run: j.boot},
			{Name: "R. a host re-imaged over PXE, phoned home (amd64 twin)", Missing: landed("cmd/bootstrapd"), Run: j.reimage},
		}
	}
	steps := []Step{
		{Name: "1. boot: every service ready", Run: j.boot},
		{Name: "2. tunnel up to the hub", Missing: landed("cmd/vpn"), Run: j.tunnel},
		{Name: "3. ssh -J admin@hub:2222 ceph-1", Missing: landed("cmd/vpn", "cmd/bastion"), Run: j.jump},
		{Name: "4. clock set by NTP (no RTC: the kernel starts at 1970)", Run: j.clockSet},
	}
	if run.IPv6 {
		steps = append(steps,
			Step{Name: "D1. dual stack: AAAA /64+ipv6_suffix; tunnel over IPv6", Missing: landed("cmd/dyndns", "cmd/vpn"), Run: j.dualStack},
			Step{Name: "D2. dual stack: ssh -J over IPv6 via hub and bastion", Run: j.jump6},
		)
	}
	steps = append(steps, []Step{
		{Name: "5. box address changes: DNS follows, tunnel back", Missing: landed("cmd/dyndns", "cmd/vpn"), Run: j.newAddress},
		{Name: "6. UPS critical: compute-1, then ceph-1..3 down; gate off", Missing: landed("cmd/upsd"), Run: j.powerFailure},
		{Name: "7. mains back, new ISP address: tunnel, ssh -J, DNS back", Missing: landed("cmd/vpn", "cmd/bastion", "cmd/dyndns"), Run: j.mainsBack},
		{Name: "7R. the return plan: hosts up, noout unset, compute uncordoned; gate hosts: site whole", Missing: landed("cmd/upsd"), Run: j.siteWhole},
	}...)
	if run.Address == "dhcp" {
		steps = append(steps,
			Step{Name: "8. NTP down at power-on: vpn waits, says why, comes up", Missing: waitsForClock, Run: j.ntpUnreachable},
		)
		// gate update on the Pi: TestPiUpdate (make pi-update) (the emulated
		// USB NIC is too slow for make e2e's budget).
	}
	return steps
}

// waitsForClock reports whether the vpn waits for a synchronised clock
// (internal/clock.Wait called outside internal/clock).
func waitsForClock() string {
	root := RepoRoot()
	found := false
	filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") && !strings.Contains(p, "internal/clock/") {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "clock.Wait(") {
				found = true
			}
		}
		return nil
	})
	if !found {
		return "nothing calls internal/clock.Wait yet (the vpn does not wait for the clock)"
	}
	return ""
}

// mac is the gate's MAC address.
func (j *journey) mac() string {
	if j.run.Arch == "arm64" {
		return piMAC
	}
	return gateMAC
}

// landed reports the first of pkgs that is still a placeholder.
func landed(pkgs ...string) func() string {
	return func() string {
		for _, p := range pkgs {
			if m := Placeholder(p); m != "" {
				return m
			}
		}
		return ""
	}
}

// setup builds the site, the keys and the site file.
func (j *journey) setup() error {
	t := j.t
	leases := map[string]netip.Addr{spareMAC: netipMust(spareIP)}
	if j.run.Address == "dhcp" {
		leases[j.mac()] = GateLAN // the box's reservation for the gate
	}
	hub := Hub1WAN
	if j.run.IPv6 {
		hub = Inet6(Hub1WAN)
	}
	j.s = New(t, Options{DHCP: true, ExtraLeases: leases, IPv6: j.run.IPv6,
		DNS: map[string]netip.Addr{hubName: hub, ntpName: NTPAddr, poolName: NTPAddr}})
	j.wan = BoxWAN
	j.ntp = j.s.StartNTP()
	j.dir = j.s.Dir
	j.gateCLI = netlab.Build(t, "gate/gate")
	j.hubIface = j.s.Lab.Name("wg")

	// The VPS: its own WireGuard key; a default route to the internet.
	hubHost := j.s.Hub("vps1", Hub1WAN)
	j.hubKey = filepath.Join(j.dir, "hub.key")
	priv, err := hubHost.Output("wg", "genkey")
	if err != nil {
		return err
	}
	os.WriteFile(j.hubKey, []byte(priv), 0o600)
	pub, err := runStdin(hubHost, priv, "wg", "pubkey")
	if err != nil {
		return err
	}
	j.hubPub = strings.TrimSpace(pub)
	j.admin = j.s.Hub("admin", netipMust(adminAddr))

	j.adminKey = filepath.Join(j.dir, "admin_ed25519")
	if out, err := j.admin.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@laptop", "-f", j.adminKey); err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	adminPub, _ := os.ReadFile(j.adminKey + ".pub")

	// The re-imaging step's golden image: its sha256 goes into the site
	// file, so into the gate image. Without it only that step fails.
	if j.run.Reimage {
		gctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		j.golden, j.goldenErr = BuildGolden(gctx)
		cancel()
	}

	j.secrets = filepath.Join(j.dir, "secrets")
	os.MkdirAll(j.secrets, 0o700)
	os.WriteFile(filepath.Join(j.secrets, "nut-source"), []byte("sourcepw\n"), 0o600)
	j.siteFile = filepath.Join(j.dir, "site.yaml")
	if err := os.WriteFile(j.siteFile, []byte(j.siteYAML(strings.TrimSpace(string(adminPub)))), 0o644); err != nil {
		return err
	}
	if out, err := runIn(j.dir, j.gateCLI, "secrets", "init", "-c", j.siteFile); err != nil {
		return fmt.Errorf("gate secrets init: %v\n%s", err, out)
	}
	if out, err := runIn(j.dir, j.gateCLI, "check", "-c", j.siteFile); err != nil {
		return fmt.Errorf("gate check: %v\n%s", err, out)
	}
	j.daemons = []string{"clock", "vpn", "dyndns", "upsd", "bootstrapd", "bastion"}
	if j.run.Status {
		j.daemons = append(j.daemons, "statusd")
	}
	tsig, err := os.ReadFile(filepath.Join(j.secrets, "tsig.key"))
	if err != nil {
		return err
	}
	j.bind = j.s.StartBIND("e2e.example.org", "home.e2e.example.org", "gate-key", strings.TrimSpace(string(tsig)))
	j.s.StartIGD()

	// Every server runs a real sshd that accepts the admin's key.
	for _, sv := range j.s.Servers {
		j.s.StartSSHD(sv, []string{strings.TrimSpace(string(adminPub))})
	}
	j.nut = j.s.StartNUTSource("mon", "sourcepw")
	return nil
}

// siteYAML is the journey's site file: the example site with the test's
// keys and the lab's addresses.
func (j *journey) siteYAML(adminPub string) string {
	var hosts strings.Builder
	for _, sv := range Servers() {
		fmt.Fprintf(&hosts, "  - {name: %s, macs: [%q], ip: %s, role: %s, disk: /dev/vda, shutdown: {group: %s}}\n", sv.Name, sv.MAC, sv.IP, sv.Role, sv.Role)
	}
	var users strings.Builder
	for _, sv := range Servers() {
		fmt.Fprintf(&users, "    - {name: %s, password: file:nut-%s}\n", sv.Name, sv.Name)
	}
	zeros := strings.Repeat("0", 64)
	// The address from the box's UPnP IGD, the default source (fakeigd
	// runs on the box), and over IPv6 from the gate's own interface.
	sources := ""
	records := "[{name: " + recordName + "}]"
	if j.run.IPv6 {
		sources = fmt.Sprintf("  sources: [{type: upnp}, {type: interface, interface: eth0}]\n  ipv6_suffix: %q\n", ipv6Suffix)
		records = "[{name: " + recordName + "}, {name: " + recordName + ", type: AAAA}]"
	}
	// The spare host (step 6): in the ceph shutdown group, its NUT user
	// never logged in (so counted down in step 5); its role writes the
	// golden image from the LAN's mirror.
	// Only the twin's play has it: elsewhere it would be missing when
	// power returns, and noout kept set for it.
	if j.run.Reimage {
		fmt.Fprintf(&hosts, "  - {name: %s, macs: [%q], ip: %s, role: spare, disk: /dev/vda, shutdown: {group: ceph}}\n", spareName, spareMAC, spareIP)
		fmt.Fprintf(&users, "    - {name: %s, password: file:nut-%s}\n", spareName, spareName)
	}
	spareSum := zeros
	if j.golden != nil {
		spareSum = j.golden.Sums["golden.raw.zst"]
	}
	spareURL := fmt.Sprintf("http://%s:%d/golden.raw.zst", mirrorAddr, mirrorPort)
	// The hub by name (the box's DNS answers it), with its public address
	// for the hub's firewall rules.
	gateAddr := GateLAN.String() + "/24"
	if j.run.Address == "dhcp" {
		gateAddr = "dhcp"
	}
	// Dual stack: the hub forwards the bastion's port on its IPv6 address
	// too (D2).
	pub6 := ""
	if j.run.IPv6 {
		pub6 = fmt.Sprintf("\n      public_address6: %q", Inet6(Hub1WAN))
	}
	// QEMU emulates a Pi 3 B (raspi3b); the twin is the same site's amd64
	// build (its model says which Pi it stands for).
	model := "rpi3"
	status := ""
	if j.run.Status {
		status = "status: {listen: \":8081\"}\n"
	}
	return fmt.Sprintf(`site: {name: e2e, domain: e2e.example.org, timezone: Europe/Paris}
lan: {subnet: %s, gateway: %s, dns: [%s]}
gate: {hostname: gate-1, address: %s, model: %s}
time: {servers: [%s]}
vpn:
  hubs:
    - name: vps-1
      endpoint: %s:51820
      public_address: %s%s
      public_key: %s
      gate_address: %s/24
      hub_address: %s
dyndns:
  interval: 5s
%s  provider: {type: rfc2136, server: "%s:53", zone: e2e.example.org, tsig_key: gate-key, tsig_secret: "file:tsig.key"}
  records: %s
ups:
  source: nut://%s/ups
  source_user: mon
  source_password: file:nut-source
  users:
%s    - {name: admin, password: file:nut-admin, role: admin}
hosts:
%sroles:
  ceph: {image: {url: "http://%s:8080/images/ceph.raw", sha256: %s}}
  compute: {k3s: server, image: {url: "http://%s:8080/images/compute.raw", sha256: %s}}
  spare: {image: {url: %q, sha256: %s, format: zstd}}
bastion:
  users:
    - name: admin
      keys: [%q]
      allow: ["*:22"]
bootstrap: {dhcp: proxy}
%s`, LANPrefix, BoxLAN, BoxLAN, gateAddr, model, ntpName, hubName, Hub1WAN, pub6, j.hubPub, tunnelGate, tunnelHub, sources, DNSAddr, records,
		UPSSourceLAN, users.String(), hosts.String(), GateLAN, zeros, GateLAN, zeros, spareURL, spareSum, adminPub, status)
}

// boot: the image built from the site file boots in QEMU and every
// daemon reports ready on the serial console.
func (j *journey) boot() error {
	if err := j.setup(); err != nil {
		return err
	}
	if j.run.Arch == "amd64" {
		img, partuuid := j.s.BuildImage(j.gateCLI, j.siteFile)
		j.partuuid = partuuid
		j.gate = j.s.BootGate(img, partuuid, gateMAC)
		return j.gate.WaitReady(j.daemons, 4*time.Minute)
	}
	img := filepath.Join(j.dir, "gate.img")
	j.s.BuildImageArch(j.gateCLI, j.siteFile, "arm64", img)
	pb, err := PreparePi(img, filepath.Join(j.dir, "pi"))
	if err != nil {
		return err
	}
	// The VPS is up before the gate: the tunnel's time from a cold boot
	// is the gate's alone.
	if err := j.startHub(); err != nil {
		return err
	}
	j.poweredOn = time.Now()
	j.gate = j.s.BootPi(pb, piMAC)
	if err := j.gate.Proc.WaitFor("Run /gokrazy/init", 3*time.Minute); err != nil {
		return fmt.Errorf("the kernel did not start gokrazy's init: %v\n%s", err, Tail(j.gate.Proc.Output(), 20))
	}
	j.initAt = time.Now()
	if err := j.gate.WaitReady(j.daemons, 6*time.Minute); err != nil {
		return fmt.Errorf("%w\n%s", err, j.diagnosis())
	}
	j.readyAt = time.Now()
	fmt.Printf("JOURNEY    QEMU start → /gokrazy/init %.1fs → every daemon ready %.1fs\n", j.initAt.Sub(j.poweredOn).Seconds(), j.readyAt.Sub(j.poweredOn).Seconds())
	if c, err := j.gateClock(); err == nil {
		fmt.Printf("JOURNEY    the Pi's clock at boot: %s\n", c.UTC().Format(time.RFC3339))
	}
	j.reportRestarting()
	return nil
}

// reportRestarting prints the services gokrazy shows restarting (a bug on
// the image, whichever step it breaks).
func (j *journey) reportRestarting() {
	time.Sleep(3 * time.Second) // gokrazy calls a service restarting once it exited twice
	for _, l := range j.restarting() {
		fmt.Printf("JOURNEY    PROBLEM gokrazy: %s\n", l)
	}
}

// tunnel: the hub runs Debian's wireguard-go with what `gate vps-config`
// generated, and the gate's tunnel comes up through the box's NAT.
func (j *journey) tunnel() error {
	if j.gate == nil {
		return fmt.Errorf("the gate did not boot")
	}
	if j.hub == nil {
		if err := j.startHub(); err != nil {
			return err
		}
	}
	if err := netlab.Eventually(90*time.Second, 250*time.Millisecond, j.hub.Handshaken); err != nil {
		return fmt.Errorf("no handshake from the gate: %v\n%s", err, j.diagnosis())
	}
	if err := netlab.Eventually(30*time.Second, 250*time.Millisecond, func() error {
		_, err := j.hub.Host.Run("ping", "-c1", "-W1", tunnelGate)
		return err
	}); err != nil {
		return err
	}
	j.tunnelAt = time.Now()
	if !j.poweredOn.IsZero() {
		fmt.Printf("JOURNEY    QEMU start → tunnel up %.1fs\n", j.tunnelAt.Sub(j.poweredOn).Seconds())
	}
	return nil
}

// startHub configures the VPS with what `gate vps-config` writes and
// starts its WireGuard.
func (j *journey) startHub() error {
	out := filepath.Join(j.dir, "vps")
	os.MkdirAll(out, 0o700)
	if o, err := runIn(j.dir, j.gateCLI, "vps-config", "-c", j.siteFile, "-i", j.hubIface, "-o", out); err != nil {
		return fmt.Errorf("gate vps-config: %v\n%s", err, o)
	}
	j.hub = j.s.StartHub(j.s.hubHost("vps1"), j.hubIface, out, j.hubKey)
	return nil
}

// jump: an admin on the internet reaches ceph-1's real sshd through the
// hub's public port and the gate's bastion, checking the bastion's host key
// against the known_hosts line `gate vps-config` printed.
func (j *journey) jump() error {
	kh := filepath.Join(j.dir, "known_hosts")
	b, err := os.ReadFile(filepath.Join(j.dir, "vps", "known_hosts"))
	if err != nil {
		return err
	}
	os.WriteFile(kh, b, 0o600)
	// OpenSSH hands -F (not -o) on to the jump connection. accept-new
	// still refuses a bastion whose key differs from vps-config's line.
	cfg := filepath.Join(j.dir, "ssh_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking accept-new\n  BatchMode yes\n  ConnectTimeout 20\n", j.adminKey, kh)), 0o600)
	return j.jumpVia(fmt.Sprintf("admin@%s:2222", Hub1WAN))
}

// jumpVia logs in to ceph-1 with ssh -J through jump.
func (j *journey) jumpVia(jump string) error {
	cfg := filepath.Join(j.dir, "ssh_config")
	args := []string{"-F", cfg, "-J", jump, "root@ceph-1", "echo jumped to $(hostname -I)"}
	var out string
	err := netlab.Eventually(60*time.Second, 2*time.Second, func() error {
		var e error
		out, e = j.admin.Run(append([]string{"ssh"}, args...)...)
		return e
	})
	if err != nil {
		return fmt.Errorf("ssh -J: %v\n%s", err, out)
	}
	if !strings.Contains(out, "jumped to 192.168.1.11") {
		return fmt.Errorf("ssh -J reached the wrong host: %q", out)
	}
	return nil
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

// runIn runs a program of the host (not in a namespace) in dir.
func runIn(dir string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runStdin runs argv in h with stdin.
func runStdin(h *netlab.Host, stdin string, argv ...string) (string, error) {
	cmd := h.Command(context.Background(), argv...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	return string(out), err
}

// newAddress: the ISP gives the line a new public address; the DNS record
// follows and the tunnel comes back through the box's new address.
func (j *journey) newAddress() error {
	if err := j.dnsIs(j.wan, 60*time.Second); err != nil {
		return fmt.Errorf("%v\n%s", err, j.diagnosis())
	}
	start := time.Now()
	j.setWAN(netipMust("203.0.113.3"))
	dnsTook, tunnelTook, err := j.follow(start, 90*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("JOURNEY    DNS record followed in %.1fs, tunnel back in %.1fs\n", dnsTook.Seconds(), tunnelTook.Seconds())
	return boxFollowed(j.gate.Proc.Output(), j.wan)
}

// boxFollowed checks on the gate's console that vpn and dyndns each
// subscribed to the box's UPnP IGD (the one at the default gateway, see
// boxFound) and saw its WAN address become wan.
func boxFollowed(console string, wan netip.Addr) error {
	if err := boxFound(console); err != nil {
		return err
	}
	for _, d := range []string{"vpn", "dyndns"} {
		changed := `msg="the box's WAN address changed" daemon=` + d + ` `
		if !slices.ContainsFunc(strings.Split(console, "\n"), func(l string) bool {
			return strings.Contains(l, changed) && strings.Contains(l, " to="+wan.String()+" ")
		}) {
			return fmt.Errorf("%s followed the box's IGD but never saw its WAN address become %s", d, wan)
		}
	}
	return nil
}

// boxFound checks on the gate's console that vpn and dyndns each
// subscribed to the box's UPnP IGD, found by filtered searches: the
// kernel attached the filter that keeps a flood of SSDP answers from
// hiding the box (no publicip.UnfilteredWarning).
func boxFound(console string) error {
	for _, d := range []string{"vpn", "dyndns"} {
		if !strings.Contains(console, `msg="following the box's WAN address" daemon=`+d+` `) {
			return fmt.Errorf("%s did not subscribe to the box's IGD", d)
		}
	}
	if i := strings.Index(console, publicip.UnfilteredWarning); i >= 0 {
		line, _, _ := strings.Cut(console[i:], "\n")
		return fmt.Errorf("the gate's kernel refused the SSDP socket filter: %s", line)
	}
	return nil
}

const (
	recordName = "home.e2e.example.org"
	ipv6Suffix = "::2"
)

// dnsIs waits until the dyndns record holds want.
func (j *journey) dnsIs(want netip.Addr, timeout time.Duration) error {
	return netlab.Eventually(timeout, 500*time.Millisecond, func() error {
		if got := j.bind.Lookup(recordName); got != want.String() {
			return fmt.Errorf("%s A = %q, want %s", recordName, got, want)
		}
		return nil
	})
}

// setWAN gives the box a new public address.
func (j *journey) setWAN(next netip.Addr) {
	j.s.SetBoxWAN(j.wan, next)
	j.wan = next
}

// follow waits until the DNS record holds the box's address and the hub
// reaches the gate through the tunnel from that address, and says how
// long each took since start.
func (j *journey) follow(start time.Time, timeout time.Duration) (dnsTook, tunnelTook time.Duration, err error) {
	err = netlab.Eventually(timeout, 250*time.Millisecond, func() error {
		if dnsTook == 0 && j.bind.Lookup(recordName) == j.wan.String() {
			dnsTook = time.Since(start)
		}
		if tunnelTook == 0 {
			if out, _ := j.hub.Host.Output("wg", "show", j.hub.Iface, "endpoints"); strings.Contains(out, j.gateEndpoint()) {
				if _, err := j.hub.Host.Run("ping", "-c1", "-W1", tunnelGate); err == nil {
					tunnelTook = time.Since(start)
				}
			}
		}
		if dnsTook == 0 || tunnelTook == 0 {
			return fmt.Errorf("box at %s: DNS followed %v, tunnel back %v", j.wan, dnsTook != 0, tunnelTook != 0)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("%v\n%s", err, j.diagnosis())
	}
	return dnsTook, tunnelTook, err
}

// gateEndpoint is how the hub sees the gate's tunnel endpoint: the box's
// public IPv4 address (NAT), or over IPv6 the gate's own address in the
// LAN's /64.
func (j *journey) gateEndpoint() string {
	if j.run.IPv6 {
		return "[" + strings.TrimSuffix(LANPrefix6.Addr().String(), "::") + ":"
	}
	return j.wan.String() + ":"
}

// diagnosis is what the gate's console says went wrong, and the hub's view.
func (j *journey) diagnosis() string {
	var b strings.Builder
	if p := Problems(j.gate.Proc.Output()); p != "" {
		fmt.Fprintf(&b, "problems on the gate's console:\n%s\n", p)
	}
	if j.hub != nil {
		out, _ := j.hub.Host.Output("wg", "show", j.hub.Iface)
		fmt.Fprintf(&b, "hub: %s\n", strings.TrimSpace(out))
	}
	if c, err := j.gateClock(); err == nil {
		fmt.Fprintf(&b, "gate clock: %s\n", c.UTC().Format(time.RFC3339))
	}
	for _, l := range j.restarting() {
		fmt.Fprintf(&b, "gokrazy: %s\n", l)
	}
	// gokrazy's own network programs write only to their log buffers:
	// the DHCP client's, the gate's address and name service hanging on it.
	fmt.Fprintf(&b, "gokrazy's /gokrazy/dhcp log (last lines):\n%s\n", j.serviceLog("/gokrazy/dhcp", 15))
	fmt.Fprintf(&b, "last console lines:\n%s", Tail(j.gate.Proc.Output(), 25))
	return b.String()
}

// restarting lists the services gokrazy's overview page shows restarting.
func (j *journey) restarting() []string {
	auth, err := GokrazyAuth(j.dir, j.secrets)
	if err != nil {
		return []string{"(" + err.Error() + ")"}
	}
	page, err := j.s.Box.Output("curl", "-s", "-m", "10", "-K", auth, "http://"+GateLAN.String()+"/")
	if err != nil {
		return []string{"(gokrazy's overview page: " + err.Error() + ")"}
	}
	return RestartingServices(page)
}

// serviceLog is the end (n lines) of a gokrazy service's stdout and
// stderr, from its status page (with the password), as text.
func (j *journey) serviceLog(path string, n int) string {
	auth, err := GokrazyAuth(j.dir, j.secrets)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	page, err := j.s.Box.Output("curl", "-s", "-m", "10", "-K", auth, "http://"+GateLAN.String()+"/status?path="+url.QueryEscape(path))
	if err != nil {
		return "(gokrazy's status page of " + path + ": " + err.Error() + ")"
	}
	return Tail(PageText(page), n)
}

// gateClock reads the gate's clock: the Date header of gokrazy's web
// interface (answered even without the password).
func (j *journey) gateClock() (time.Time, error) {
	out, err := j.s.Box.Output("curl", "-sI", "-m", "5", "http://"+GateLAN.String()+"/")
	if err != nil {
		return time.Time{}, fmt.Errorf("the gate's web interface: %v", err)
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Date: "); ok {
			return http.ParseTime(v)
		}
	}
	return time.Time{}, fmt.Errorf("no Date header: %q", out)
}

// clockSet: the emulated Pi has no RTC, so it booted in 1970; gokrazy's
// ntp sets the clock from chrony on the simulated internet, whose name the
// box's DNS answers.
func (j *journey) clockSet() error {
	var at time.Time
	err := netlab.Eventually(3*time.Minute, 2*time.Second, func() error {
		var err error
		if at, err = j.gateClock(); err != nil {
			return err
		}
		if d := time.Since(at); d > time.Minute || d < -time.Minute {
			return fmt.Errorf("the gate's clock says %s", at.UTC().Format(time.RFC3339))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%v\n%s", err, j.diagnosis())
	}
	return nil
}

// mainsBack: the UPS cut the power (step 6); mains come back, the box
// restarts with a new public address from the ISP, the gate boots again
// from its SD card with its clock back in 1970. Without anyone touching
// the hub, the tunnel comes back (the hub accepts the handshake only once
// the gate's clock is past the last one it saw), the DNS record follows
// and an admin reaches ceph-1 through the bastion again.
func (j *journey) mainsBack() error {
	if j.gate == nil || j.hub == nil {
		return fmt.Errorf("the gate or the hub never came up")
	}
	j.nut.Set("OL", 100, 1800)
	j.gate.PowerCut()
	for _, sv := range j.s.Servers { // their power is back too
		j.s.PowerOn(sv)
	}
	j.setWAN(netipMust("203.0.113.4"))
	start := time.Now()
	j.mainsBackAt = start
	j.gate = j.gate.PowerOn("qemu-gate-again")
	if err := j.gate.WaitReady(j.daemons, 6*time.Minute); err != nil {
		return fmt.Errorf("powered on again: %w\n%s", err, j.diagnosis())
	}
	ready := time.Since(start)
	if c, err := j.gateClock(); err == nil {
		fmt.Printf("JOURNEY    powered on again: every daemon ready in %.1fs, the gate's clock then %s\n", ready.Seconds(), c.UTC().Format(time.RFC3339))
	}
	j.reportRestarting()
	dnsTook, tunnelTook, err := j.follow(start, 5*time.Minute)
	if err != nil {
		return err
	}
	if err := j.jump(); err != nil {
		return fmt.Errorf("bastion after the power cut: %w", err)
	}
	// After power-on the daemons search for the box again: on this
	// boot's console too, found and filtered.
	if err := netlab.Eventually(30*time.Second, time.Second, func() error { return boxFound(j.gate.Proc.Output()) }); err != nil {
		return fmt.Errorf("after the power cut: %w", err)
	}
	fmt.Printf("JOURNEY    after power-on: DNS record on the new address in %.1fs, tunnel back in %.1fs, ssh -J works\n", dnsTook.Seconds(), tunnelTook.Seconds())
	return nil
}

// powerFailure: the UPS goes on battery, then low: the gate's upsd shows
// FSD to compute-1's upsmon first, then to ceph-1..3's, tells the UPS to
// power off (shutdown.return) and powers the gate off.
func (j *journey) powerFailure() error {
	// The hosts got the gate's shutdown key from its cloud-init.
	if err := j.installGateKey(); err != nil {
		return err
	}
	markers := map[string]string{}
	for _, sv := range j.s.Servers {
		pw, err := os.ReadFile(filepath.Join(j.secrets, "nut-"+sv.Name))
		if err != nil {
			return err
		}
		markers[sv.Name] = filepath.Join(j.dir, sv.Name+".down")
		// Each host's shutdown: the moment to its marker, then off the LAN.
		j.s.StartUpsmon(sv, GateLAN.String(), "ups", sv.Name, strings.TrimSpace(string(pw)), PowerOffCmd(markers[sv.Name], 2*time.Second))
	}
	ceph1 := j.s.Server("ceph-1").Host
	if err := netlab.Eventually(60*time.Second, time.Second, func() error {
		out, err := ceph1.Output("upsc", "-c", "ups@"+GateLAN.String())
		if n := len(strings.Fields(out)); err != nil || n != 4 {
			return fmt.Errorf("the gate's upsd has %d of 4 secondaries (%v)", n, err)
		}
		return nil
	}); err != nil {
		return err
	}
	j.nut.Set("OB DISCHRG", 60, 900)
	time.Sleep(3 * time.Second)
	start := time.Now()
	j.nut.Set("OB LB", 8, 60)
	if err := j.gate.Proc.WaitFor("the gate powers itself off", 3*time.Minute); err != nil {
		return fmt.Errorf("%v\n%s", err, Tail(j.gate.Proc.Output(), 30))
	}
	if err := j.gate.Halted(time.Minute); err != nil {
		return fmt.Errorf("%v\n%s", err, Tail(j.gate.Proc.Output(), 30))
	}
	if j.gate.Pi != nil {
		// The power is cut; what the gate left on its SD card's /perm.
		j.gate.PowerCut()
		if out, err := j.gate.Pi.CheckPerm(); err != nil {
			fmt.Printf("JOURNEY    PROBLEM /perm after the power-off: %v\n%s\n", err, indent(Tail(out, 12)))
		}
	}
	fmt.Printf("JOURNEY    OB LB to the gate's power-off: %.1fs\n", time.Since(start).Seconds())
	read := func(name string) (float64, error) {
		b, err := os.ReadFile(markers[name])
		if err != nil {
			return 0, fmt.Errorf("%s did not shut down", name)
		}
		var f float64
		fmt.Sscan(string(b), &f)
		return f, nil
	}
	compute, err := read("compute-1")
	if err != nil {
		return err
	}
	down := map[string]float64{"compute-1": compute}
	for _, n := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		at, err := read(n)
		if err != nil {
			return err
		}
		if at < compute {
			return fmt.Errorf("%s went down before compute-1", n)
		}
		down[n] = at
	}
	if err := j.preStepsRan(down); err != nil {
		return err
	}
	if !strings.Contains(j.gate.Proc.Output(), "shutdown.return") && !strings.Contains(j.gate.Proc.Output(), "UPS told to cut its output") {
		return fmt.Errorf("the UPS was not told to power off")
	}
	for _, sv := range j.s.Servers { // they power on again with the mains
		j.s.PowerOn(sv)
	}
	return nil
}

// reimage: mains are back and the gate, powered off by step 5, is powered
// on again from its image; the admin flags the spare host with `gate
// reimage` from the LAN; at power-on the QEMU machine boots over PXE
// through the gate's bootstrapd (proxyDHCP beside the box's DHCP, TFTP,
// its iPXE script), the imager writes the role's golden image from the
// LAN's mirror and reboots; the next PXE boot goes to the disk, Debian
// takes its NoCloud data from the gate and phones home: `gate hosts`
// shows it installed.
func (j *journey) reimage() error {
	if j.goldenErr != nil {
		return fmt.Errorf("the golden image: %w", j.goldenErr)
	}
	if j.gate == nil {
		return fmt.Errorf("the gate did not boot")
	}

	lan := j.s.ServeFiles("mirror", netipMust(mirrorAddr), mirrorPort, j.golden.Dir)
	gate := func(args ...string) (string, error) {
		out, err := lan.Output(append([]string{j.gateCLI}, args...)...)
		if err != nil {
			return out, fmt.Errorf("gate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out, nil
	}
	if _, err := gate("reimage", "-c", j.siteFile, spareName); err != nil {
		return err
	}
	m, err := j.s.NewPXEMachine(spareName, spareMAC, 2<<30)
	if err != nil {
		return err
	}
	flagged := time.Now()
	q := m.PowerOn("imager")
	select {
	case <-q.Done():
	case <-time.After(15 * time.Minute):
		q.Kill()
		return fmt.Errorf("the imager did not end in 15 min:\n%s", Tail(q.Output(), 30))
	}
	if !strings.Contains(q.Output(), "imager done; rebooting") {
		return fmt.Errorf("the imager did not write the disk:\n%s\n--- gate:\n%s", Tail(q.Output(), 30), Tail(j.gate.Proc.Output(), 20))
	}
	imaged := time.Since(flagged)
	if out, err := gate("hosts", "-c", j.siteFile); err != nil || !strings.Contains(hostLine(out, spareName), "written") {
		return fmt.Errorf("gate hosts after the imager (want %s written): %v\n%s", spareName, err, out)
	}

	booted := time.Now()
	vm := m.PowerOn("disk")
	defer vm.Kill()
	var line string
	err = netlab.Eventually(12*time.Minute, 3*time.Second, func() error {
		select {
		case <-vm.Done():
			return fmt.Errorf("%s powered off", spareName)
		default:
		}
		out, err := gate("hosts", "-c", j.siteFile)
		if err != nil {
			return err
		}
		line = hostLine(out, spareName)
		if !strings.Contains(line, "boots from disk") || !strings.Contains(line, "installed ") {
			return fmt.Errorf("gate hosts: %s", line)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("no phone-home: %v\n%s", err, Tail(vm.Output(), 30))
	}
	fmt.Printf("JOURNEY    flag → PXE → imager → reboot %.1fs; PXE → disk → phone-home %.1fs\n",
		imaged.Seconds(), time.Since(booted).Seconds())
	fmt.Printf("JOURNEY    gate hosts: %s\n", strings.Join(strings.Fields(line), " "))
	return nil
}

// hostLine is host's line of `gate hosts`.
func hostLine(out, host string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == host {
			return l
		}
	}
	return ""
}

// ntpUnreachable: the gate is powered on while the NTP server is down (its
// clock at the floor it saved on /perm, older than the last handshake the
// hub saw): the vpn waits for a synchronised clock and logs why; once NTP
// answers it comes up, and the hub (untouched) accepts it.
func (j *journey) ntpUnreachable() error {
	if j.gate == nil || j.hub == nil {
		return fmt.Errorf("the gate or the hub never came up")
	}
	j.ntp.Stop()
	j.gate.PowerCut()
	j.gate = j.gate.PowerOn("qemu-pi-no-ntp")
	var waiting string
	if err := netlab.Eventually(4*time.Minute, time.Second, func() error {
		if waiting = lineWith(j.gate.Proc.Output(), "waiting for a synchronised clock", "daemon=vpn"); waiting == "" {
			return fmt.Errorf("the vpn does not say it waits for the clock")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%v\n%s", err, j.diagnosis())
	}
	fmt.Printf("JOURNEY    %s\n", strings.TrimSpace(waiting))
	before := j.gate.Proc.Output()
	if strings.Contains(before[strings.Index(before, waiting):], `msg="hub up"`) {
		return fmt.Errorf("the vpn reported the hub up while it waited for the clock")
	}
	start := time.Now()
	j.ntp.Start()
	if err := netlab.Eventually(3*time.Minute, time.Second, func() error {
		if lineWith(j.gate.Proc.Output(), "clock synchronised", "daemon=vpn") == "" {
			return fmt.Errorf("the vpn does not say the clock is synchronised")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("NTP back: %v\n%s", err, j.diagnosis())
	}
	if err := netlab.Eventually(3*time.Minute, time.Second, func() error {
		_, err := j.hub.Host.Run("ping", "-c1", "-W1", tunnelGate)
		return err
	}); err != nil {
		return fmt.Errorf("NTP back, no tunnel: %v\n%s", err, j.diagnosis())
	}
	fmt.Printf("JOURNEY    NTP back: tunnel up %.1fs later\n", time.Since(start).Seconds())
	return nil
}

// indent puts two spaces before each line of s.
func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// lineWith is the first line of out that holds every one of parts.
func lineWith(out string, parts ...string) string {
	for _, l := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return l
		}
	}
	return ""
}

// update: `gate update` from the LAN pushes the next build (another build
// timestamp) to the running Pi: root to the inactive partition, boot,
// switch, reboot. The emulated Pi cannot restart itself (see pi.go): when
// the kernel says it restarts, the harness powers it on again, reading the
// SD card's boot partition afresh as the firmware would (cmdline.txt now
// points at the other root). The gate comes back with the new build and
// every daemon ready.
func (j *journey) update() error {
	if j.gate == nil {
		return fmt.Errorf("the gate never came up")
	}
	img := filepath.Join(j.dir, "gate-next.img")
	const build = "e2e-next-build"
	j.s.BuildImageArch(j.gateCLI, j.siteFile, "arm64", img, "--build-timestamp", build)
	start := time.Now()
	upd := j.s.Box.Start("gate-update", nil, j.gateCLI, "update", "-c", j.siteFile, "--image", img, "--host", GateLAN.String(), "--wait", "6m")
	restarted := false
	// gate update ends by itself when an upload makes no progress for 2
	// minutes (image.Updater.Stall): this bound only keeps the loop
	// finite. The emulated Pi's USB NIC carries 30 to 115 KB/s here,
	// depending on the machine's load: the update's ~60 MiB (root, and the
	// boot partition's used part, mostly the kernel) take 9 to 35 minutes.
	const bound = 40 * time.Minute
	deadline := time.After(bound)
	for done := false; !done; {
		select {
		case <-upd.Done():
			done = true
		case <-time.After(2 * time.Second):
			if !restarted && strings.Contains(j.gate.Proc.Output(), "reboot: Restarting system") {
				j.gate = j.gate.PowerOn("qemu-pi-updated")
				restarted = true
			}
		case <-deadline:
			upd.Kill()
			return fmt.Errorf("gate update did not end in %s:\n%s", bound, Tail(upd.Output(), 20))
		}
	}
	if upd.Err() != nil || !strings.Contains(upd.Output(), "update done") {
		return fmt.Errorf("gate update: %v\n%s\n%s", upd.Err(), Tail(upd.Output(), 20), j.diagnosis())
	}
	if !restarted {
		return fmt.Errorf("gate update ended but the Pi never restarted")
	}
	took := time.Since(start)
	if err := j.gate.WaitReady(j.daemons, 3*time.Minute); err != nil {
		return fmt.Errorf("after the update: %w\n%s", err, j.diagnosis())
	}
	if !strings.Contains(lineWith(j.gate.Proc.Output(), "cmdline:"), "-03 ") {
		return fmt.Errorf("after the update the Pi did not boot from root B:\n%s", lineWith(j.gate.Proc.Output(), "cmdline:"))
	}
	fmt.Printf("JOURNEY    gate update to %s: %.1fs until it answered with the new build\n", build, took.Seconds())
	return nil
}

// dualStack: the gate took an address in the box's /64 from its router
// advertisements (SLAAC); dyndns publishes the AAAA record from the
// interface source: that /64 plus ipv6_suffix; the hub, reachable only
// over IPv6 (its name has only an AAAA record), carries the tunnel: it
// sees the gate's endpoint in the LAN's /64.
func (j *journey) dualStack() error {
	want := publicip6(LANPrefix6, ipv6Suffix)
	if err := netlab.Eventually(60*time.Second, time.Second, func() error {
		if got := j.bind.LookupType(recordName, "AAAA"); got != want.String() {
			return fmt.Errorf("%s AAAA = %q, want %s", recordName, got, want)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%v\n%s", err, j.diagnosis())
	}
	out, err := j.hub.Host.Output("wg", "show", j.hub.Iface, "endpoints")
	if err != nil || !strings.Contains(out, j.gateEndpoint()) {
		return fmt.Errorf("the hub sees the gate at %q, want an endpoint in %s (%v)", strings.TrimSpace(out), LANPrefix6, err)
	}
	fmt.Printf("JOURNEY    AAAA %s; the hub sees the gate at %s\n", want, strings.Fields(out)[1])
	return nil
}

// publicip6 is prefix's first 64 bits and suffix's last 64.
func publicip6(prefix netip.Prefix, suffix string) netip.Addr {
	p, s := prefix.Addr().As16(), netip.MustParseAddr(suffix).As16()
	copy(p[8:], s[8:])
	return netip.AddrFrom16(p)
}

// jump6: an admin on an IPv6 network reaches ceph-1 through the hub's
// IPv6 address and the bastion.
func (j *journey) jump6() error {
	return j.jumpVia(fmt.Sprintf("admin@[%s]:2222", Inet6(Hub1WAN)))
}
