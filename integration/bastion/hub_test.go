package bastion

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationBastionThroughHub is the full topology: an admin on the
// internet runs `ssh -J admin@<vps>:2222 root@ceph-1`; the VPS (Debian's
// wireguard-go and nftables loaded from `gate vps-config`) forwards the
// port through the tunnel to the gate, where cmd/vpn holds the tunnel and
// cmd/bastion listens on the tunnel address. The bastion starts before the
// tunnel exists, and the admin checks its host key against the known_hosts
// line vps-config wrote.
func TestIntegrationBastionThroughHub(t *testing.T) {
	netlab.Require(t, "ssh", "sshd", "ssh-keygen", "wireguard-go", "wg", "wg-quick", "nft")
	s := site.New(t, site.Options{})
	dir := s.Dir
	gate := s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", gate, "eth0", site.GateLAN.String()+"/24")
	gate.MustRun("ip", "route", "add", "default", "via", site.BoxLAN.String())

	hubHost := s.Hub("vps1", site.Hub1WAN)
	hubKey := filepath.Join(dir, "hub.key")
	priv, err := hubHost.Output("wg", "genkey")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(hubKey, []byte(priv), 0o600)
	pubB, err := hubHost.Output("sh", "-c", "wg pubkey < "+hubKey)
	if err != nil {
		t.Fatal(err)
	}
	admin := s.Hub("admin", netip.MustParseAddr("203.0.113.50"))

	key := filepath.Join(dir, "admin_key")
	if out, err := admin.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); err != nil {
		t.Fatal(out, err)
	}
	pub, _ := os.ReadFile(key + ".pub")
	s.StartSSHD(s.Server("ceph-1"), []string{strings.TrimSpace(string(pub))})

	siteFile := filepath.Join(dir, "site.yaml")
	os.WriteFile(siteFile, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: %s, gateway: %s}
gate: {hostname: gate-1, address: %s/24}
vpn:
  hubs:
    - name: vps-1
      endpoint: %s:51820
      public_key: %s
      gate_address: 10.99.0.2/24
      hub_address: 10.99.0.1
roles: {ceph: {installer: {kernel: "http://192.168.1.2/k"}}}
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: 192.168.1.11, role: ceph}
bastion:
  users:
    - name: admin
      keys: [%q]
      allow: ["*:22"]
`, site.LANPrefix, site.BoxLAN, site.GateLAN, site.Hub1WAN, strings.TrimSpace(pubB), strings.TrimSpace(string(pub)))), 0o644)
	gateCLI := netlab.Build(t, "gate/gate")
	if out, err := gate.Run(gateCLI, "secrets", "init", "-c", siteFile); err != nil {
		t.Fatal(out, err)
	}
	secrets := filepath.Join(dir, "secrets")

	// The bastion first: the tunnel address does not exist yet.
	state := filepath.Join(dir, "state")
	b := gate.Start("bastion", nil, netlab.Build(t, "gate/cmd/bastion"), "-config", siteFile,
		"-secrets", secrets, "-state", state, "-metrics", "127.0.0.1:9105")
	if err := b.WaitFor("msg=ready", 20*time.Second); err != nil {
		t.Fatal(err, b.Output())
	}
	v := gate.Start("vpn", nil, netlab.Build(t, "gate/cmd/vpn"), "-config", siteFile, "-secrets", secrets,
		"-state", filepath.Join(dir, "vpnstate"), "-metrics", "127.0.0.1:9101")
	if err := v.WaitFor("msg=ready", 30*time.Second); err != nil {
		t.Fatal(err, v.Output())
	}

	iface := s.Lab.Name("wg")
	vps := filepath.Join(dir, "vps")
	os.MkdirAll(vps, 0o700)
	if out, err := gate.Run(gateCLI, "vps-config", "-c", siteFile, "-i", iface, "-o", vps); err != nil {
		t.Fatal(out, err)
	}
	hub := s.StartHub(hubHost, iface, vps, hubKey)
	if err := netlab.Eventually(60*time.Second, time.Second, hub.Handshaken); err != nil {
		t.Fatalf("no handshake: %v\n%s", err, site.Tail(v.Output(), 20))
	}

	// accept-new still refuses a bastion whose key differs from the
	// known_hosts line vps-config wrote.
	cfg := filepath.Join(dir, "ssh_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking accept-new\n  BatchMode yes\n  ConnectTimeout 10\n",
		key, filepath.Join(vps, "known_hosts"))), 0o600)
	var out string
	err = netlab.Eventually(60*time.Second, 2*time.Second, func() error {
		var e error
		out, e = admin.Run("ssh", "-F", cfg, "-J", fmt.Sprintf("admin@%s:2222", site.Hub1WAN), "root@ceph-1", "echo jumped to $(hostname -I)")
		return e
	})
	if err != nil || !strings.Contains(out, "jumped to 192.168.1.11") {
		t.Fatalf("ssh -J through the hub: %v\n%s\nbastion:\n%s", err, out, site.Tail(b.Output(), 20))
	}
	// The record is written when the bastion has seen both directions
	// close, which may be just after the client exits.
	var audit []byte
	if err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		audit, _ = os.ReadFile(filepath.Join(state, "audit.log"))
		if !strings.Contains(string(audit), `"resolved":"192.168.1.11:22"`) || !strings.Contains(string(audit), `"result":"closed"`) {
			return fmt.Errorf("audit log lacks the jump")
		}
		return nil
	}); err != nil {
		t.Errorf("%v:\n%s", err, audit)
	}
	t.Logf("audit: %s", audit)
}
