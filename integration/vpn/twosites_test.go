package vpn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestIntegrationTwoSitesOneHub: `gate vps-config -c A -c B` makes one hub
// configuration serving two sites (distinct tunnel networks and bastion
// ports); Debian's wireguard-go loaded with it carries both tunnels, and
// each forwarded port reaches its own gate with the admin's address.
func TestIntegrationTwoSitesOneHub(t *testing.T) {
	netlab.Require(t, "wireguard-go", "wg", "wg-quick", "nft", "iperf3", "ping", "curl", "sysctl")
	w := newWorld(t, 1, false)
	vps1 := w.vps[0]

	// Site B: its gate has a public address of its own (no NAT).
	const gateBAddr = "198.51.100.60"
	gateB := w.lab.Host("gateb")
	w.lab.Attach(w.inet, "br0", gateB, "eth0", gateBAddr+"/24")
	a, err := os.ReadFile(w.site)
	if err != nil {
		t.Fatal(err)
	}
	siteB := strings.NewReplacer("{name: lab}", "{name: labb}", "192.168.77.", "192.168.88.", "10.99.0.", "10.99.1.",
		"      route_lan: true\n", "      route_lan: true\n      bastion_port: 2223\n").Replace(string(a))
	dirB := filepath.Join(w.dir, "b")
	os.MkdirAll(dirB, 0o755)
	siteBPath := filepath.Join(dirB, "site.yaml")
	if err := os.WriteFile(siteBPath, []byte(siteB), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := gateB.Run(w.gateCLI, "secrets", "init", "-c", siteBPath); err != nil {
		t.Fatalf("gate secrets init (site B): %v\n%s", err, out)
	}

	vps1.dir = filepath.Join(w.dir, "hub-two-sites")
	if out, err := w.gate.Output(w.gateCLI, "vps-config", "-c", w.site, "-c", siteBPath, "-i", vps1.iface, "-o", vps1.dir); err != nil {
		t.Fatalf("gate vps-config -c A -c B: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(vps1.dir, vps1.iface+".key"), []byte(vps1.key.String()+"\n"), 0o600)
	w.startHub(vps1)

	srvA := w.gate.Start("iperf3", nil, "iperf3", "-s", "-p", fmt.Sprint(bastionPort))
	srvB := gateB.Start("iperf3", nil, "iperf3", "-s", "-p", fmt.Sprint(bastionPort))
	w.startGate("auto")
	w.startVPN(gateB, siteBPath, filepath.Join(dirB, "secrets"), "auto")

	w.until("vps-1 reaches gate A", 30*time.Second, func() error { return ping(vps1.host, "10.99.0.2") })
	w.until("vps-1 reaches gate B", 30*time.Second, func() error { return ping(vps1.host, "10.99.1.2") })
	for _, c := range []struct {
		port int
		srv  *netlab.Proc
		name string
	}{{2222, srvA, "A"}, {2223, srvB, "B"}} {
		if bps := iperf(t, w.admin, vps1Addr, c.port, 1); bps <= 0 {
			t.Errorf("TCP to site %s through the hub's port %d: %v bit/s", c.name, c.port, bps)
		}
		if c.srv.WaitFor("Accepted connection from "+adminIP, 10*time.Second) != nil { // iperf3 may print after the client is done
			t.Errorf("site %s's service did not get the admin's connection on port %d:\n%s", c.name, c.port, c.srv.Output())
		}
	}
}
