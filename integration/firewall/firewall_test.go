// Package firewall tests the gate's input policy with the real program,
// the kernel's nftables and real traffic between namespaces: the hub on
// the tunnel side, a server on the LAN.
package firewall

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

const (
	gateLAN = "192.168.1.2"
	gateTun = "10.99.0.2"
	hubTun  = "10.99.0.1"
	ceph1   = "192.168.1.11"
)

// The gate's service ports: NUT, bootstrapd's HTTP, a metrics endpoint,
// gokrazy's UI; and the bastion's.
var lanOnly = []string{"3493", "8080", "9103", "80"}

const bastionPort = "2222"

type lab struct {
	gate, hub, lan *netlab.Host
	listener       *netlab.Proc
	site, dir      string
}

func newLab(t *testing.T, extra string) *lab {
	netlab.Require(t, "nft", "curl")
	l := netlab.New(t)
	x := &lab{gate: l.Host("gate"), hub: l.Host("hub"), lan: l.Host("lan"), dir: t.TempDir()}
	l.Link(x.gate, "eth0", gateLAN+"/24", x.lan, "eth0", ceph1+"/24")
	// The tunnel: a veth named like the WireGuard interface stands in
	// for it (the policy keys on the interface's name).
	l.Link(x.gate, "wg0", gateTun+"/24", x.hub, "wg0", hubTun+"/24")
	// The hub (a compromised VPS) can send from a LAN address.
	x.hub.MustRun("ip", "addr", "add", "192.168.1.11/32", "dev", "wg0")
	x.hub.MustRun("ip", "route", "add", gateLAN+"/32", "via", gateTun, "dev", "wg0")
	x.gate.MustRun("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.wg0.rp_filter=0")
	key := make([]byte, 32)
	rand.Read(key)
	x.site = filepath.Join(x.dir, "site.yaml")
	os.WriteFile(x.site, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {address: %s/24}
vpn:
  private_key: "file:wg"
  hubs:
    - {name: v, endpoint: "203.0.113.1:51820", public_key: %q, gate_address: %s/24, hub_address: %s}
bastion:
  port: %s
  users: [{name: a, keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3h3vV0cdbNpG9m8q2j7Cwlq0rM5H8Kx8Qv1c7o0eXQ a"], allow: ["*:22"]}]
%s`, gateLAN, base64.StdEncoding.EncodeToString(key), gateTun, hubTun, bastionPort, extra)), 0o644)
	x.listener = x.gate.Start("listener", nil, netlab.Build(t, "gate/integration/firewall/listener"),
		"-tcp", strings.Join(append([]string{bastionPort}, lanOnly...), ","), "-udp", "5000")
	if err := x.listener.WaitFor("listening", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return x
}

// reaches reports whether an HTTP request from h (bound to src when not
// "") to addr:port is answered (2 s to connect: a bound on the test).
func reaches(h *netlab.Host, src, addr, port string) bool {
	args := []string{"curl", "-s", "--connect-timeout", "2", "--max-time", "4"}
	if src != "" {
		args = append(args, "--interface", src)
	}
	out, err := h.Run(append(args, "http://"+addr+":"+port+"/")...)
	return err == nil && strings.Contains(out, "hello")
}

// sendUDP sends one datagram from h (bound to src) to addr:port: a TFTP
// read request, which curl sends and then waits for in vain.
func sendUDP(h *netlab.Host, src, addr, port string) {
	h.Run("curl", "-s", "--max-time", "1", "--interface", src, "tftp://"+addr+":"+port+"/x")
}

func (x *lab) startFirewall(t *testing.T) {
	p := x.gate.Start("firewall", nil, netlab.Build(t, "gate/cmd/firewall"),
		"-config", x.site, "-secrets", x.dir, "-state", filepath.Join(x.dir, "state"))
	if err := p.WaitFor("msg=ready", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	// Its work done, it exits with 125 (gokrazy does not run it again);
	// the policy stays.
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the firewall is still running 30 s after setting its policy")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "125") {
		t.Errorf("exit: %v, want status 125\n%s", err, p.Output())
	}
}

func TestIntegrationFirewall(t *testing.T) {
	x := newLab(t, "firewall: {tunnel_open: [\"udp/5000\"]}\n")

	// Without the policy, the hub reaches everything: the test can fail.
	for _, p := range append([]string{bastionPort}, lanOnly...) {
		if !reaches(x.hub, "", gateTun, p) || !reaches(x.hub, "", gateLAN, p) {
			t.Fatalf("before the policy, the hub does not reach port %s: the lab is broken", p)
		}
	}
	sendUDP(x.hub, "192.168.1.11", gateTun, "5000")
	if err := x.listener.WaitFor("udp from 192.168.1.11", 10*time.Second); err != nil {
		t.Fatalf("before the policy, a LAN-sourced datagram from the tunnel is not received: the lab is broken")
	}

	x.startFirewall(t)
	rules := x.gate.MustRun("nft", "list", "table", "inet", "gate-firewall")
	t.Logf("nft list table inet gate-firewall:\n%s", rules)
	for _, want := range []string{"policy drop", `iifname "wg0" jump tunnel`, "tcp dport 2222 accept", "udp dport 5000 accept",
		`iifname "wg0" ip saddr 192.168.1.0/24 counter`, "ip saddr 192.168.1.0/24 accept"} {
		if !strings.Contains(rules, want) {
			t.Errorf("the ruleset lacks %q", want)
		}
	}

	// From the hub: the bastion only.
	if !reaches(x.hub, "", gateTun, bastionPort) {
		t.Error("the hub does not reach the bastion")
	}
	for _, p := range lanOnly {
		if reaches(x.hub, "", gateTun, p) {
			t.Errorf("the hub reaches port %s on the tunnel address", p)
		}
		if reaches(x.hub, "", gateLAN, p) {
			t.Errorf("the hub reaches port %s on the LAN address", p)
		}
	}
	// From the LAN: everything.
	for _, p := range append([]string{bastionPort}, lanOnly...) {
		if !reaches(x.lan, "", gateLAN, p) {
			t.Errorf("a LAN host does not reach port %s", p)
		}
	}
	// A LAN-sourced packet from the tunnel is dropped, the hub's own
	// address passes on an opened port.
	before := strings.Count(x.listener.Output(), "udp from 192.168.1.11")
	sendUDP(x.hub, "192.168.1.11", gateTun, "5000")
	sendUDP(x.hub, hubTun, gateTun, "5000")
	if err := x.listener.WaitFor("udp from "+hubTun, 10*time.Second); err != nil {
		t.Error("the hub's datagram to an opened port is dropped")
	}
	if n := strings.Count(x.listener.Output(), "udp from 192.168.1.11"); n != before {
		t.Error("a LAN-sourced datagram from the tunnel was received")
	}
	counters := x.gate.MustRun("nft", "list", "chain", "inet", "gate-firewall", "prerouting")
	if !strings.Contains(counters, "192.168.0.0/16 counter packets 1") && !strings.Contains(counters, "192.168.0.0/16 counter packets 2") {
		t.Errorf("the spoofed packet is not counted as dropped:\n%s", counters)
	}
}

// Metrics and gokrazy's UI are LAN-only by default and a site-file
// choice otherwise.
func TestIntegrationFirewallTunnelOpen(t *testing.T) {
	x := newLab(t, "firewall: {tunnel_open: [metrics, gokrazy]}\n")
	x.startFirewall(t)
	for p, want := range map[string]bool{"9103": true, "80": true, "3493": false, "8080": false, bastionPort: true} {
		if got := reaches(x.hub, "", gateTun, p); got != want {
			t.Errorf("hub → port %s: reached %v, want %v", p, got, want)
		}
	}
}

// firewall.off removes the policy a previous boot set and leaves the
// program stopped (exit 125).
func TestIntegrationFirewallOff(t *testing.T) {
	x := newLab(t, "")
	x.startFirewall(t)
	if reaches(x.hub, "", gateTun, "3493") {
		t.Fatal("the policy is not in force")
	}
	b, err := os.ReadFile(x.site)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(x.site, append(b, "firewall: {off: true}\n"...), 0o644)
	p := x.gate.Start("firewall-off", nil, netlab.Build(t, "gate/cmd/firewall"),
		"-config", x.site, "-secrets", x.dir, "-state", filepath.Join(x.dir, "state"))
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("firewall with off: true did not exit")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "125") {
		t.Errorf("exit: %v, want status 125", p.Err())
	}
	if out, err := x.gate.Run("nft", "list", "table", "inet", "gate-firewall"); err == nil {
		t.Errorf("the table is still there:\n%s", out)
	}
	if !reaches(x.hub, "", gateTun, "3493") {
		t.Error("with the policy off, the hub does not reach port 3493")
	}
}
