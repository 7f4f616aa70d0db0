// Package site builds the simulated site every end-to-end test runs in: the
// ISP box (NAT between the LAN and the "internet", the LAN's DHCP, UPnP
// IGD), the internet, the VPS hub(s), the LAN switch with ceph-1..3 and
// compute-1 as namespace hosts running sshd and NUT's upsmon, and a NUT
// source (Debian's upsd + dummy-ups) playing the UPS. Everything lives in
// network namespaces the test creates, and is torn down when the test ends,
// whether it passed or not.
//
// Addresses (inside the namespaces only; nothing is routed outside them):
//
//	internet 203.0.113.0/24   box WAN .2, hub-1 .10, hub-2 .20 (documentation range)
//	LAN      192.168.1.0/24   box .1, gate .2, ceph-N .1N, compute-1 .21, UPS source .30
//
// With Options.IPv6 the site is dual stack (no NAT for IPv6):
//
//	internet 2001:db8:ff::/64  box WAN ::2, each host ::N where N is its IPv4 address's last byte
//	LAN      2001:db8:1::/64   box ::1, sending router advertisements (Debian's radvd): SLAAC
package site

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/nocloud"
)

// Fixed addresses of the simulated site.
var (
	LANPrefix    = netip.MustParsePrefix("192.168.1.0/24")
	BoxLAN       = netip.MustParseAddr("192.168.1.1")
	GateLAN      = netip.MustParseAddr("192.168.1.2")
	UPSSourceLAN = netip.MustParseAddr("192.168.1.30")
	InetPrefix   = netip.MustParsePrefix("203.0.113.0/24")
	BoxWAN       = netip.MustParseAddr("203.0.113.2")
	LANPrefix6   = netip.MustParsePrefix("2001:db8:1::/64")
	BoxLAN6      = netip.MustParseAddr("2001:db8:1::1")
	InetPrefix6  = netip.MustParsePrefix("2001:db8:ff::/64")
	BoxWAN6      = netip.MustParseAddr("2001:db8:ff::2")
	Hub1WAN      = netip.MustParseAddr("203.0.113.10")
	Hub2WAN      = netip.MustParseAddr("203.0.113.20")
)

// Server is one LAN server of the site.
type Server struct {
	Name string
	MAC  string
	IP   netip.Addr
	Role string
	Host *netlab.Host
}

// Servers are the example site's hosts, in file order.
func Servers() []Server {
	return []Server{
		{Name: "ceph-1", MAC: "52:54:00:00:01:01", IP: netip.MustParseAddr("192.168.1.11"), Role: "ceph"},
		{Name: "ceph-2", MAC: "52:54:00:00:01:02", IP: netip.MustParseAddr("192.168.1.12"), Role: "ceph"},
		{Name: "ceph-3", MAC: "52:54:00:00:01:03", IP: netip.MustParseAddr("192.168.1.13"), Role: "ceph"},
		{Name: "compute-1", MAC: "52:54:00:00:02:01", IP: netip.MustParseAddr("192.168.1.21"), Role: "compute"},
	}
}

// Site is a running simulated site.
type Site struct {
	t   testing.TB
	Lab *netlab.Lab
	Dir string // scratch directory for configs and markers

	Internet *netlab.Host // the internet's switch (bridge "inet")
	Box      *netlab.Host // the ISP box: wan0 on the internet, lan0 on the LAN
	Switch   *netlab.Host // the LAN's switch (bridge "br0")
	Servers  []Server

	// BoxDNS is the box's dnsmasq (DHCP and/or DNS; its log has the
	// queries), nil when New started none.
	BoxDNS *netlab.Proc

	ipv6 bool
	mu   sync.Mutex
	hubs map[string]*netlab.Host
}

// Options select what New starts.
type Options struct {
	// DHCP starts Debian's dnsmasq on the box as the LAN's DHCP server,
	// with a static lease per server (and for the gate at .2).
	DHCP bool
	// ExtraLeases are more MAC → IP static leases for the box's DHCP.
	ExtraLeases map[string]netip.Addr
	// DNS makes the box the LAN's DNS server too (with DHCP, the address
	// its leases give), answering these names (and their subdomains) with
	// these addresses, as an ISP box forwarding to the internet's DNS
	// would; other names get no answer.
	DNS map[string]netip.Addr
	// IPv6 makes the site dual stack: the box routes the LAN's /64, which
	// it announces by router advertisements (radvd), to the internet.
	IPv6 bool
}

// Requirements lists the programs New needs.
var Requirements = []string{"nft", "dnsmasq"}

// New builds the site's networks: the internet, the box with NAT, the LAN
// switch and one namespace per server, each with its static address.
func New(t testing.TB, o Options) *Site {
	t.Helper()
	netlab.Require(t, Requirements...)
	s := &Site{t: t, Lab: netlab.New(t), Dir: t.TempDir()}
	l := s.Lab

	s.Internet = l.Host("inet")
	s.Internet.Bridge("inet", "")
	s.Switch = l.Host("lan")
	s.Switch.Bridge("br0", "")

	s.Box = l.Host("box")
	l.Attach(s.Internet, "inet", s.Box, "wan0", BoxWAN.String()+"/24")
	l.Attach(s.Switch, "br0", s.Box, "lan0", BoxLAN.String()+"/24")
	s.Box.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	nat := `table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" masquerade
	}
}`
	s.nft(s.Box, nat)

	for _, sv := range Servers() {
		sv.Host = l.Host(sv.Name)
		l.Attach(s.Switch, "br0", sv.Host, "eth0", sv.IP.String()+"/24")
		sv.Host.MustRun("ip", "link", "set", "eth0", "address", sv.MAC)
		sv.Host.MustRun("ip", "route", "add", "default", "via", BoxLAN.String())
		s.Servers = append(s.Servers, sv)
	}
	if o.DHCP || o.DNS != nil {
		s.startDHCP(o)
	}
	if o.IPv6 {
		s.startIPv6()
	}
	return s
}

// Inet6 is the IPv6 address on the internet of the host whose IPv4
// address there is v4.
func Inet6(v4 netip.Addr) netip.Addr {
	b := InetPrefix6.Addr().As16()
	b[15] = v4.As4()[3]
	return netip.AddrFrom16(b)
}

// startIPv6 gives the box its IPv6 addresses and forwarding, and runs
// Debian's radvd on the LAN announcing LANPrefix6 (autonomous: SLAAC).
func (s *Site) startIPv6() {
	s.ipv6 = true
	s.Box.MustRun("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	s.Box.MustRun("ip", "-6", "addr", "add", BoxLAN6.String()+"/64", "dev", "lan0", "nodad")
	s.Box.MustRun("ip", "-6", "addr", "add", BoxWAN6.String()+"/64", "dev", "wan0", "nodad")
	netlab.Require(s.t, "radvd")
	conf := filepath.Join(s.Dir, "radvd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`interface lan0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	prefix %s {
		AdvOnLink on;
		AdvAutonomous on;
	};
};
`, LANPrefix6)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	p := s.Box.Start("radvd", nil, "radvd", "--nodaemon", "--config="+conf, "--pidfile="+filepath.Join(s.Dir, "radvd.pid"), "--logmethod=stderr", "--debug=1")
	if err := netlab.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		if !strings.Contains(p.Output(), "sending RA") && !strings.Contains(p.Output(), "sendmsg") && !strings.Contains(p.Output(), "version") {
			return fmt.Errorf("radvd said nothing yet")
		}
		return nil
	}); err != nil {
		s.t.Fatalf("radvd on the box: %v\n%s", err, p.Output())
	}
}

// Server returns the server called name.
func (s *Site) Server(name string) Server {
	for _, sv := range s.Servers {
		if sv.Name == name {
			return sv
		}
	}
	s.t.Fatalf("site: no server %q", name)
	return Server{}
}

// nft loads a ruleset into h.
func (s *Site) nft(h *netlab.Host, ruleset string) {
	s.t.Helper()
	p := filepath.Join(s.Dir, h.Name+".nft")
	if err := os.WriteFile(p, []byte(ruleset), 0o600); err != nil {
		s.t.Fatal(err)
	}
	h.MustRun("nft", "-f", p)
}

// startDHCP runs dnsmasq on the box as the LAN's DHCP server (no TFTP,
// no proxy), like an ISP box; DNS only for the names of o.DNS.
func (s *Site) startDHCP(o Options) {
	var b strings.Builder
	port := 0
	if o.DNS != nil {
		port = 53
	}
	fmt.Fprintf(&b, "port=%d\ninterface=lan0\nbind-interfaces\nno-resolv\nno-hosts\nlog-queries\n", port)
	for name, addr := range o.DNS {
		fmt.Fprintf(&b, "address=/%s/%s\n", name, addr)
	}
	if o.DHCP {
		fmt.Fprintf(&b, "dhcp-range=192.168.1.100,192.168.1.199,255.255.255.0,1h\n")
		fmt.Fprintf(&b, "dhcp-option=option:router,%s\ndhcp-authoritative\n", BoxLAN)
		fmt.Fprintf(&b, "dhcp-leasefile=%s\n", filepath.Join(s.Dir, "dnsmasq.leases"))
		for _, sv := range s.Servers {
			fmt.Fprintf(&b, "dhcp-host=%s,%s,%s\n", sv.MAC, sv.IP, sv.Name)
		}
		for mac, ip := range o.ExtraLeases {
			fmt.Fprintf(&b, "dhcp-host=%s,%s\n", mac, ip)
		}
	}
	conf := filepath.Join(s.Dir, "dnsmasq.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
	p := s.Box.Start("dnsmasq", nil, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-dhcp", "--conf-file="+conf, "--pid-file="+filepath.Join(s.Dir, "dnsmasq.pid"))
	ready := "DHCP, IP range"
	if !o.DHCP {
		ready = "started, version"
	}
	if err := p.WaitFor(ready, 10*time.Second); err != nil {
		s.t.Fatalf("the box's dnsmasq did not start: %v\n%s", err, p.Output())
	}
	s.BoxDNS = p
}

// SetBoxWAN moves the box's public address to a (a new address from the
// ISP), as happens when the line reconnects.
func (s *Site) SetBoxWAN(from, to netip.Addr) {
	s.t.Helper()
	s.Box.MustRun("ip", "addr", "del", from.String()+"/24", "dev", "wan0")
	s.Box.MustRun("ip", "addr", "add", to.String()+"/24", "dev", "wan0")
	// Forget the NAT mappings bound to the old address.
	s.Box.Run("conntrack", "-F")
}

// StartSSHD runs a real OpenSSH sshd on server sv, accepting the given
// authorized_keys lines for root (AddAuthorizedKey adds more while it
// runs: sshd reads the file at each login). Its sessions find the host's
// own commands (HostBin) first in PATH. It returns the host's public key
// line (for known_hosts).
func (s *Site) StartSSHD(sv Server, authorizedKeys []string) string {
	s.t.Helper()
	dir := filepath.Join(s.Dir, "sshd-"+sv.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	key := filepath.Join(dir, "ssh_host_ed25519_key")
	if _, err := os.Stat(key); err != nil {
		if out, err := sv.Host.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); err != nil {
			s.t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	ak := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(ak, []byte(strings.Join(authorizedKeys, "\n")+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port 22
ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PidFile none
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
SetEnv PATH=%s:/usr/sbin:/usr/bin:/sbin:/bin
`, sv.IP, key, ak, s.HostBin(sv))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		s.t.Fatal(err)
	}
	p := sv.Host.Start("sshd", nil, "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	if err := p.WaitFor("Server listening", 10*time.Second); err != nil {
		s.t.Fatalf("sshd on %s: %v\n%s", sv.Name, err, p.Output())
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(pub))
}

// HostBin is the directory of server sv's own commands (what the site's
// hosts have and the test machine lacks, e.g. ceph, kubectl), first in
// PATH in its sshd's sessions.
func (s *Site) HostBin(sv Server) string {
	dir := filepath.Join(s.Dir, "sshd-"+sv.Name, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	return dir
}

// AddAuthorizedKey appends an authorized_keys line to server sv's sshd
// (StartSSHD).
func (s *Site) AddAuthorizedKey(sv Server, line string) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, "sshd-"+sv.Name, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// NUTSource is Debian's upsd + dummy-ups playing the UPS.
type NUTSource struct {
	Host    *netlab.Host
	Addr    string // host:port of its upsd
	UPS     string
	devFile string
	// Driver (dummy-ups) and Upsd, to signal by their process.
	Driver, Upsd *netlab.Proc
}

// StartNUTSource runs Debian's dummy-ups and upsd on a LAN namespace host
// at UPSSourceLAN, the UPS starting on line power with a full battery.
// user/password are granted read access (upsd.users).
func (s *Site) StartNUTSource(user, password string) *NUTSource {
	s.t.Helper()
	netlab.Require(s.t, "/lib/nut/upsd", "/lib/nut/dummy-ups")
	h := s.Lab.Host("upssrc")
	s.Lab.Attach(s.Switch, "br0", h, "eth0", UPSSourceLAN.String()+"/24")
	dir := filepath.Join(s.Dir, "nutsrc")
	state := filepath.Join(dir, "state")
	for _, d := range []string{dir, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.t.Fatal(err)
		}
	}
	n := &NUTSource{Host: h, Addr: UPSSourceLAN.String() + ":3493", UPS: "ups", devFile: filepath.Join(dir, "ups.dev")}
	n.Set("OL", 100, 1800)
	files := map[string]string{
		"ups.conf":    fmt.Sprintf("[ups]\n\tdriver = dummy-ups\n\tport = %s\n\tdesc = \"simulated UPS\"\n", n.devFile),
		"upsd.conf":   fmt.Sprintf("LISTEN %s 3493\n", UPSSourceLAN),
		"upsd.users":  fmt.Sprintf("[%s]\n\tpassword = %s\n\tupsmon primary\n\tactions = SET\n\tinstcmds = ALL\n", user, password),
		"nut.conf":    "MODE=netserver\n",
		"upsmon.conf": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			s.t.Fatal(err)
		}
	}
	env := []string{"NUT_CONFPATH=" + dir, "NUT_STATEPATH=" + state}
	drv := h.Start("dummy-ups", env, "/lib/nut/dummy-ups", "-D", "-a", "ups", "-u", "root")
	time.Sleep(time.Second) // the driver's socket must exist before upsd starts; upsd retries anyway
	srv := h.Start("upsd", env, "/lib/nut/upsd", "-D", "-u", "root")
	n.Driver, n.Upsd = drv, srv
	if err := netlab.Eventually(15*time.Second, 300*time.Millisecond, func() error {
		st, err := n.Status()
		if err == nil && st != "OL" {
			err = fmt.Errorf("ups.status %q", st)
		}
		return err
	}); err != nil {
		s.t.Fatalf("NUT source did not come up: %v\n%s\n%s", err, drv.Output(), srv.Output())
	}
	return n
}

// Set rewrites the dummy UPS's state; dummy-ups picks the change up by itself.
func (n *NUTSource) Set(status string, charge, runtime int) {
	content := fmt.Sprintf("ups.status: %s\nbattery.charge: %d\nbattery.runtime: %d\nups.mfr: EATON\nups.model: Ellipse PRO 1600\ndevice.type: ups\nups.delay.shutdown: 20\nups.delay.start: 30\n", status, charge, runtime) +
		// More of a real Eaton's variables (NUT's devices dumps library).
		"ups.firmware: 02.08.0010\nups.timer.shutdown: -1\nups.timer.start: -1\nups.load: 23\ninput.voltage: 230.0\noutput.voltage: 230.0\nbattery.voltage: 27.3\nbattery.charge.low: 20\ninput.transfer.high: 285\n"
	os.WriteFile(n.devFile, []byte(content), 0o644)
	now := time.Now()
	os.Chtimes(n.devFile, now, now)
}

// Hub adds a VPS namespace on the internet at addr (its public address).
func (s *Site) Hub(name string, addr netip.Addr) *netlab.Host {
	s.t.Helper()
	h := s.Lab.Host(name)
	s.Lab.Attach(s.Internet, "inet", h, "eth0", addr.String()+"/24")
	h.MustRun("ip", "route", "add", "default", "via", BoxWAN.String())
	if s.ipv6 {
		h.MustRun("ip", "-6", "addr", "add", Inet6(addr).String()+"/64", "dev", "eth0", "nodad")
		h.MustRun("ip", "-6", "route", "add", LANPrefix6.String(), "via", BoxWAN6.String())
	}
	s.mu.Lock()
	if s.hubs == nil {
		s.hubs = map[string]*netlab.Host{}
	}
	s.hubs[name] = h
	s.mu.Unlock()
	return h
}

// Status reads ups.status through the source's upsd with Debian's upsc.
func (n *NUTSource) Status() (string, error) {
	out, err := n.Host.Output("upsc", n.UPS+"@"+n.Addr, "ups.status")
	return strings.TrimSpace(out), err
}

// hubHost returns a namespace created by Hub, by name.
func (s *Site) hubHost(name string) *netlab.Host {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hubs[name]
	if !ok {
		s.t.Fatalf("site: no hub %q", name)
	}
	return h
}

// StartUpsmon runs Debian's upsmon on server sv as a NUT secondary of the
// gate's upsd with the upsmon.conf bootstrapd's cloud-init installs
// (nocloud.UpsmonConf), except that its SHUTDOWNCMD runs shutdownCmd (a
// shell command line: record the moment, take the host off the LAN)
// instead of powering off. Each gets a private /run/nut (several upsmon on
// one machine share its pid file).
func (s *Site) StartUpsmon(sv Server, gate, ups, user, password, shutdownCmd string) *netlab.Proc {
	s.t.Helper()
	netlab.Require(s.t, "/lib/nut/upsmon")
	dir := filepath.Join(s.Dir, "upsmon-"+sv.Name)
	os.MkdirAll(dir, 0o755)
	conf := nocloud.UpsmonConf(nocloud.MonitorLine(ups, gate, user, password), "/bin/sh -c '"+shutdownCmd+"'")
	os.WriteFile(filepath.Join(dir, "upsmon.conf"), []byte(conf), 0o640)
	os.WriteFile(filepath.Join(dir, "nut.conf"), []byte("MODE=netclient\n"), 0o640)
	env := []string{"NUT_CONFPATH=" + dir, "NUT_STATEPATH=" + dir}
	return sv.Host.Start("upsmon", env, "sh", "-c", "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && exec /lib/nut/upsmon -D -F -u root")
}

// PowerOffCmd is a StartUpsmon shutdownCmd that plays a host's power-off:
// it writes the time to marker, and after delay takes the host's eth0
// down, so that it no longer answers on the LAN, and writes that time to
// marker+".off".
func PowerOffCmd(marker string, delay time.Duration) string {
	return fmt.Sprintf("date +%%s.%%N > %s; sleep %.3f; ip link set eth0 down; date +%%s.%%N > %s.off", marker, delay.Seconds(), marker)
}

// PowerOn undoes PowerOffCmd: sv's eth0 up again, with its default route.
func (s *Site) PowerOn(sv Server) {
	s.t.Helper()
	sv.Host.MustRun("ip", "link", "set", "eth0", "up")
	sv.Host.MustRun("ip", "route", "replace", "default", "via", BoxLAN.String())
}

// MarkCmd is a StartUpsmon shutdownCmd that only writes the time to
// marker: the host keeps answering on the LAN.
func MarkCmd(marker string) string {
	return fmt.Sprintf("date +%%s.%%N > %s", marker)
}
