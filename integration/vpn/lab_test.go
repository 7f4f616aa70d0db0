// Package vpn tests cmd/vpn and `gate vps-config` end to end: a home LAN
// behind a box doing NAT, an "internet" and two VPS hubs running Debian's
// wireguard-go loaded with the configuration `gate vps-config` generated.
package vpn

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"gate/integration/netlab"
)

// Addresses of the lab (documentation ranges, inside the lab's namespaces
// only).
const (
	boxWAN1  = "198.51.100.2"
	boxWAN2  = "198.51.100.3"
	vps1Addr = "198.51.100.11"
	vps2Addr = "198.51.100.12"
	adminIP  = "198.51.100.50"
	// The internet is dual stack for the admin and vps-1, which has a
	// public_address6: the bastion's port is forwarded over IPv6 too.
	admin6  = "2001:db8:77::50"
	vps1v6  = "2001:db8:77::11"
	gateLAN = "192.168.77.2"
	boxLAN  = "192.168.77.1"
	// The gate's bastion port on its tunnel address: iperf3 stands in for
	// the bastion in these tests.
	bastionPort = 5201
)

// world is the lab: namespaces, the generated files and the hubs.
type world struct {
	t         *testing.T
	lab       *netlab.Lab
	inet, box *netlab.Host
	gate      *netlab.Host
	admin     *netlab.Host
	vps       []*hubNS
	dir       string // the site file's directory
	site      string
	secrets   string
	gateCLI   string
	vpnBin    string
	wgIface   string // the gate's interface
	failAfter time.Duration
	// names: the hubs' endpoints are names (vps-N.lab.test), looked up in
	// the gate's /etc/hosts (see useHosts).
	names      bool
	keepalive  time.Duration
	gateKeyB64 string
}

// hubNS is one VPS.
type hubNS struct {
	name, addr string
	host       *netlab.Host
	iface      string
	dir        string // where vps-config wrote its files
	key        wgtypes.Key
	proc       *netlab.Proc
	tunGate    string // the gate's tunnel address as seen from this hub
	tunHub     string
}

func newWorld(t *testing.T, hubs int, names bool) *world {
	t.Helper()
	w := &world{t: t, lab: netlab.New(t), dir: t.TempDir(), keepalive: 2 * time.Second, failAfter: 12 * time.Second, names: names}
	w.gateCLI = netlab.Build(t, "gate/gate")
	w.vpnBin = netlab.Build(t, "gate/cmd/vpn")
	l := w.lab
	w.inet = l.Host("inet")
	w.inet.Bridge("br0", "")
	w.box = l.Host("box")
	w.gate = l.Host("gate")
	w.admin = l.Host("admin")
	l.Attach(w.inet, "br0", w.box, "wan0", boxWAN1+"/24")
	l.Attach(w.inet, "br0", w.admin, "eth0", adminIP+"/24")
	w.admin.MustRun("ip", "addr", "add", admin6+"/64", "dev", "eth0", "nodad")
	l.Link(w.box, "lan0", boxLAN+"/24", w.gate, "eth0", gateLAN+"/24")
	w.gate.MustRun("ip", "route", "add", "default", "via", boxLAN)
	// The box: forwarding and masquerade, like an ISP box.
	w.box.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	nft := filepath.Join(w.dir, "box.nft")
	os.WriteFile(nft, []byte("table ip box {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname \"wan0\" masquerade\n\t}\n}\n"), 0o644)
	w.box.MustRun("nft", "-f", nft)

	for i := 0; i < hubs; i++ {
		h := &hubNS{name: fmt.Sprintf("vps-%d", i+1), addr: []string{vps1Addr, vps2Addr}[i]}
		h.host = l.Host(fmt.Sprintf("vps%d", i+1))
		l.Attach(w.inet, "br0", h.host, "eth0", h.addr+"/24")
		if i == 0 {
			h.host.MustRun("ip", "addr", "add", vps1v6+"/64", "dev", "eth0", "nodad")
		}
		h.iface = l.Name(fmt.Sprintf("wh%d", i+1))
		h.key, _ = wgtypes.GeneratePrivateKey()
		h.tunGate = fmt.Sprintf("10.%d.0.2", 99-i)
		h.tunHub = fmt.Sprintf("10.%d.0.1", 99-i)
		w.vps = append(w.vps, h)
	}
	w.wgIface = l.Name("wg")
	w.writeSite()
	for _, h := range w.vps {
		h.dir = filepath.Join(w.dir, h.name)
		out, err := w.gate.Output(w.gateCLI, "vps-config", "-c", w.site, "-i", h.iface, "-o", h.dir, h.name)
		if err != nil {
			t.Fatalf("gate vps-config %s: %v\n%s", h.name, err, out)
		}
		os.WriteFile(filepath.Join(h.dir, h.iface+".key"), []byte(h.key.String()+"\n"), 0o600)
	}
	return w
}

func (w *world) writeSite() {
	var hubs strings.Builder
	for i, h := range w.vps {
		endpoint := h.addr
		if w.names {
			endpoint = h.name + ".lab.test"
		}
		fmt.Fprintf(&hubs, "    - name: %s\n      endpoint: %s:51820\n      public_address: %s\n      public_key: %s\n      gate_address: %s/24\n      hub_address: %s\n      route_lan: %v\n",
			h.name, endpoint, h.addr, h.key.PublicKey(), h.tunGate, h.tunHub, i == 0)
		if i > 0 {
			fmt.Fprintf(&hubs, "      bastion_port: %d\n", 2222+i)
		} else {
			fmt.Fprintf(&hubs, "      public_address6: %q\n", vps1v6)
		}
	}
	site := fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.77.0/24, gateway: %s}
gate: {hostname: gate, address: %s/24}
vpn:
  keepalive: %s
  failover_after: %s
  interface: %s
  hubs:
%sbastion:
  port: %d
  host_key: file:ssh_host_ed25519_key
  users:
    - name: admin
      keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtQUDhmPpnEbaGEcbrkMTm0e+oVbeqIyQQQUdh2Ep11 admin@laptop]
      allow: ["*:22"]
`, boxLAN, gateLAN, w.keepalive, w.failAfter, w.wgIface, hubs.String(), bastionPort)
	w.site = filepath.Join(w.dir, "site.yaml")
	w.secrets = filepath.Join(w.dir, "secrets")
	if err := os.WriteFile(w.site, []byte(site), 0o644); err != nil {
		w.t.Fatal(err)
	}
	if out, err := w.gate.Run(w.gateCLI, "secrets", "init", "-c", w.site); err != nil {
		w.t.Fatalf("gate secrets init: %v\n%s", err, out)
	}
}

// startHub runs Debian's wireguard-go in the VPS and applies the files
// `gate vps-config` wrote, the way wg-quick would: the stripped config
// with `wg setconf`, the key, the addresses, routes for the allowed IPs,
// the MTU, then the sysctls and the nftables rules.
func (w *world) startHub(h *hubNS) {
	w.t.Helper()
	conf := filepath.Join(h.dir, h.iface+".conf")
	os.MkdirAll("/var/run/wireguard", 0o755) // wireguard-go's UAPI sockets, shared by every namespace
	h.proc = h.host.Start("wireguard-go", []string{"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1", "LOG_LEVEL=error"}, "wireguard-go", "-f", h.iface)
	if err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		_, err := h.host.Run("wg", "show", h.iface)
		return err
	}); err != nil {
		w.t.Fatalf("wireguard-go in %s: %v", h.name, err)
	}
	stripped, err := h.host.Output("wg-quick", "strip", conf)
	if err != nil {
		w.t.Fatal(err)
	}
	sc := filepath.Join(h.dir, "stripped.conf")
	os.WriteFile(sc, []byte(stripped), 0o600)
	h.host.MustRun("wg", "setconf", h.iface, sc)
	h.host.MustRun("wg", "set", h.iface, "private-key", filepath.Join(h.dir, h.iface+".key"))
	addrs, mtu, allowed := wgQuickFields(w.t, conf)
	for _, a := range addrs {
		h.host.MustRun("ip", "addr", "add", a, "dev", h.iface)
	}
	h.host.MustRun("ip", "link", "set", h.iface, "mtu", mtu, "up")
	for _, a := range allowed {
		if !strings.HasPrefix(a, h.tunGate+"/") { // covered by the address's prefix route
			h.host.MustRun("ip", "route", "replace", a, "dev", h.iface)
		}
	}
	h.host.MustRun("sysctl", "-qp", filepath.Join(h.dir, "99-gate-hub.conf"))
	h.host.MustRun("nft", "-f", filepath.Join(h.dir, "gate-hub.nft"))
}

// useHosts gives the gate namespace its own /etc/hosts (ip netns exec
// bind-mounts /etc/netns/NS/hosts over /etc/hosts) naming the hubs; call
// again to change it (the file is rewritten in place, so the bind mount of
// a running process sees the change).
func (w *world) useHosts(addrs map[string]string) {
	w.t.Helper()
	dir := filepath.Join("/etc/netns", w.gate.NS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { os.RemoveAll(dir) })
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for name, a := range addrs {
		fmt.Fprintf(&b, "%s %s.lab.test\n", a, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// stopHub kills the hub's wireguard-go: its interface goes with it.
func (w *world) stopHub(h *hubNS) { h.proc.Kill() }

// wgQuickFields reads what wg-quick would apply itself: the Address
// entries, MTU and the peers' AllowedIPs.
func wgQuickFields(t *testing.T, path string) (addrs []string, mtu string, allowed []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(k), "#") {
			continue
		}
		var list []string
		for _, s := range strings.Split(v, ",") {
			list = append(list, strings.TrimSpace(s))
		}
		switch strings.TrimSpace(k) {
		case "Address":
			addrs = append(addrs, list...)
		case "MTU":
			mtu = strings.TrimSpace(v)
		case "AllowedIPs":
			allowed = append(allowed, list...)
		}
	}
	if len(addrs) == 0 || mtu == "" {
		t.Fatalf("%s: no Address or MTU", path)
	}
	return addrs, mtu, allowed
}

// startGate runs cmd/vpn in the gate and waits for its readiness line.
func (w *world) startGate(backend string) *netlab.Proc {
	w.t.Helper()
	return w.startVPN(w.gate, w.site, w.secrets, backend)
}

// startVPN runs cmd/vpn in h with a site file and its secrets.
func (w *world) startVPN(h *netlab.Host, site, secrets, backend string) *netlab.Proc {
	w.t.Helper()
	p := h.Start("vpn", nil, w.vpnBin, "-config", site, "-secrets", secrets, "-state", filepath.Join(w.t.TempDir(), "state"),
		"-metrics", "127.0.0.1:9101", "-backend", backend)
	if err := p.WaitFor("msg=ready", 30*time.Second); err != nil {
		w.t.Fatalf("%v\n%s", err, p.Output())
	}
	return p
}

// ping succeeds when one echo is answered within a second.
func ping(h *netlab.Host, addr string) error {
	_, err := h.Run("ping", "-c1", "-W1", "-n", addr)
	return err
}

// until polls cond (a bounded wait) and returns how long it took.
func (w *world) until(what string, timeout time.Duration, cond func() error) time.Duration {
	w.t.Helper()
	start := time.Now()
	if err := netlab.Eventually(timeout, 200*time.Millisecond, cond); err != nil {
		w.t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
	return time.Since(start)
}

// iperf runs an iperf3 client in h against addr:port for secs seconds and
// returns the received rate in bit/s.
func iperf(t *testing.T, h *netlab.Host, addr string, port, secs int) float64 {
	t.Helper()
	return iperfArgs(t, h, addr, port, secs)
}

func iperfArgs(t *testing.T, h *netlab.Host, addr string, port, secs int, extra ...string) float64 {
	t.Helper()
	out, err := h.Output(append([]string{"iperf3", "-c", addr, "-p", strconv.Itoa(port), "-t", strconv.Itoa(secs), "-J"}, extra...)...)
	if err != nil {
		t.Fatalf("iperf3 to %s:%d: %v\n%s", addr, port, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return r.End.SumReceived.BitsPerSecond
}

// metrics returns the gate's /metrics page.
func (w *world) metrics() string {
	out, _ := w.gate.Output("curl", "-s", "--max-time", "5", "http://127.0.0.1:9101/metrics")
	return out
}

// changeBoxAddress re-addresses the box's WAN side, as when the ISP hands
// out a new public address; the masquerade follows.
func (w *world) changeBoxAddress(from, to string) {
	w.box.MustRun("ip", "addr", "del", from+"/24", "dev", "wan0")
	w.box.MustRun("ip", "addr", "add", to+"/24", "dev", "wan0")
}

// hubEndpoint is the gate's endpoint as the hub sees it.
func hubEndpoint(h *hubNS) string {
	out, _ := h.host.Output("wg", "show", h.iface, "endpoints")
	f := strings.Fields(out)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}
