// Package tailnet tests the gate on a tailnet: cmd/tailnet (the real
// program) joins Tailscale's own test control server (testcontrol, with a
// DERP and STUN server of the same module) in a namespace on the lab's
// internet; the admin's laptop, a second tsnet node in another namespace,
// reaches ceph-1's real OpenSSH server with OpenSSH's ssh -J through the
// gate's bastion on the tailnet, reads the UPS with Debian's upsc through
// the read-only NUT relay, and is refused everything else.
package tailnet

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

const (
	authKey   = "tskey-auth-lab"
	nutUser   = "monuser"
	nutPass   = "monpass"
	hubTunnel = "10.99.0.2"
)

var (
	controlAddr = netip.MustParseAddr("203.0.113.60")
	adminAddr   = netip.MustParseAddr("203.0.113.50")
)

type lab struct {
	t                    *testing.T
	s                    *site.Site
	gate, admin, control *netlab.Host
	dir, key, siteFile   string
	secrets, state       string
	controlURL           string
	proc                 *netlab.Proc // the gate's tailnet daemon
	gateIP               string       // its tailnet IPv4 address
	hub                  *site.Hub    // nil: no vpn section
	bastion, vpn         *netlab.Proc // the WireGuard-hub path (with a hub)
	nut                  *site.NUTSource
}

// forwards are the admin laptop's local relays into the tailnet.
const (
	fwdBastion = "127.0.0.1:2200"
	fwdNUT     = "127.0.0.1:3493"
	fwdMetrics = "127.0.0.1:9108"
	fwdHTTP    = "127.0.0.1:8000" // port 80 of the gate: not offered
	fwdRoute   = "127.0.0.1:2211" // ceph-1:22 straight, through the advertised LAN route
)

func newLab(t *testing.T, withHub bool) *lab {
	progs := []string{"ssh", "scp", "sshd", "ssh-keygen", "upsc", "upsrw", "curl"}
	if withHub {
		progs = append(progs, "wireguard-go", "wg", "wg-quick", "nft")
	}
	netlab.Require(t, progs...)
	s := site.New(t, site.Options{})
	l := &lab{t: t, s: s, dir: s.Dir}
	l.gate = s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", l.gate, "eth0", site.GateLAN.String()+"/24")
	l.gate.MustRun("ip", "route", "add", "default", "via", site.BoxLAN.String())

	// Tailscale's test control server with its DERP and STUN, on the internet.
	l.control = s.Hub("control", controlAddr)
	c := l.control.Start("testcontrol", []string{"TAILNET_HELPER=control", "CONTROL_ADDR=" + controlAddr.String(), "AUTH_KEY=" + authKey},
		os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	if err := c.WaitFor("control ready", 60*time.Second); err != nil {
		t.Fatal(err, c.Output())
	}
	l.controlURL = "http://" + controlAddr.String() + ":8080"

	l.admin = s.Hub("admin", adminAddr)
	l.key = filepath.Join(l.dir, "admin_key")
	if out, err := l.admin.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", l.key); err != nil {
		t.Fatal(out, err)
	}
	pub, _ := os.ReadFile(l.key + ".pub")
	for _, name := range []string{"ceph-1", "compute-1"} {
		s.StartSSHD(s.Server(name), []string{strings.TrimSpace(string(pub))})
	}
	l.nut = s.StartNUTSource(nutUser, nutPass)

	vpn := ""
	var hubHost *netlab.Host
	var hubKey string
	if withHub {
		hubHost = s.Hub("vps1", site.Hub1WAN)
		hubKey = filepath.Join(l.dir, "hub.key")
		priv, err := hubHost.Output("wg", "genkey")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(hubKey, []byte(priv), 0o600)
		hubPub, err := hubHost.Output("sh", "-c", "wg pubkey < "+hubKey)
		if err != nil {
			t.Fatal(err)
		}
		vpn = fmt.Sprintf(`vpn:
  hubs:
    - {name: vps-1, endpoint: "%s:51820", public_key: %s, gate_address: %s/24, hub_address: 10.99.0.1}
`, site.Hub1WAN, strings.TrimSpace(hubPub), hubTunnel)
	}
	l.siteFile = filepath.Join(l.dir, "site.yaml")
	os.WriteFile(l.siteFile, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: %s, gateway: %s}
gate: {hostname: gate-1, address: %s/24}
%sups:
  source: "nut://%s@%s/ups"
  source_password: file:nut-source
  users: [{name: ceph-1, password: "file:nut-ceph-1"}, {name: compute-1, password: "file:nut-compute-1"}]
roles: {ceph: {installer: {kernel: "http://192.168.1.2/k"}}}
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: 192.168.1.11, role: ceph}
  - {name: compute-1, macs: ["52:54:00:00:02:01"], ip: 192.168.1.21, role: ceph}
bastion:
  users:
    - name: admin
      keys: [%q]
      allow: ["ceph-1:22"]
tailnet:
  control_url: %s
  hostname: gate-1
  tags: ["tag:gate"]
  services: [bastion, nut, metrics]
  advertise_lan: true
`, site.LANPrefix, site.BoxLAN, site.GateLAN, vpn, nutUser, site.UPSSourceLAN, strings.TrimSpace(string(pub)), l.controlURL)), 0o644)
	l.secrets = filepath.Join(l.dir, "secrets")
	os.MkdirAll(l.secrets, 0o700)
	os.WriteFile(filepath.Join(l.secrets, "nut-source"), []byte(nutPass+"\n"), 0o600)
	l.setAuthKey(authKey)
	if out, err := l.gate.Run(netlab.Build(t, "gate/gate"), "secrets", "init", "-c", l.siteFile); err != nil {
		t.Fatal(out, err)
	}
	l.state = filepath.Join(l.dir, "tailnet-state")
	l.proc = l.startGate(l.state, "127.0.0.1:9108")
	if err := l.proc.WaitFor("msg=ready", 120*time.Second); err != nil {
		t.Fatal(err, l.proc.Output())
	}
	l.gateIP = tailnetIPv4(t, l.proc.Output())

	a := l.admin.Start("laptop", []string{"TAILNET_HELPER=admin", "CONTROL_URL=" + l.controlURL, "AUTH_KEY=" + authKey,
		"FORWARDS=" + strings.Join([]string{
			fwdBastion + "=" + l.gateIP + ":22", fwdNUT + "=" + l.gateIP + ":3493", fwdMetrics + "=" + l.gateIP + ":9108",
			fwdHTTP + "=" + l.gateIP + ":80", fwdRoute + "=192.168.1.11:22"}, ",")},
		os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	if err := a.WaitFor("admin ready", 120*time.Second); err != nil {
		t.Fatal(err, a.Output())
	}

	if withHub {
		l.bastion = l.gate.Start("bastion", nil, netlab.Build(t, "gate/cmd/bastion"), "-config", l.siteFile,
			"-secrets", l.secrets, "-state", filepath.Join(l.dir, "bastion-state"), "-metrics", "127.0.0.1:9105")
		if err := l.bastion.WaitFor("msg=ready", 20*time.Second); err != nil {
			t.Fatal(err, l.bastion.Output())
		}
		l.vpn = l.gate.Start("vpn", nil, netlab.Build(t, "gate/cmd/vpn"), "-config", l.siteFile, "-secrets", l.secrets,
			"-state", filepath.Join(l.dir, "vpn-state"), "-metrics", "127.0.0.1:9101")
		if err := l.vpn.WaitFor("msg=ready", 30*time.Second); err != nil {
			t.Fatal(err, l.vpn.Output())
		}
		iface := s.Lab.Name("wg")
		vps := filepath.Join(l.dir, "vps")
		os.MkdirAll(vps, 0o700)
		if out, err := l.gate.Run(netlab.Build(t, "gate/gate"), "vps-config", "-c", l.siteFile, "-i", iface, "-o", vps); err != nil {
			t.Fatal(out, err)
		}
		l.hub = s.StartHub(hubHost, iface, vps, hubKey)
		if err := netlab.Eventually(60*time.Second, time.Second, l.hub.Handshaken); err != nil {
			t.Fatalf("no handshake: %v\n%s", err, site.Tail(l.vpn.Output(), 20))
		}
	}
	return l
}

// startGate runs the gate's tailnet daemon with its state in state; the
// NUT server it relays is the lab's (Debian's upsd), the gate's upsd not
// running here.
func (l *lab) startGate(state, metrics string) *netlab.Proc {
	return l.gate.Start("tailnet", nil, netlab.Build(l.t, "gate/cmd/tailnet"), "-config", l.siteFile, "-secrets", l.secrets,
		"-state", state, "-metrics", metrics, "-nut", l.nut.Addr)
}

func (l *lab) setAuthKey(k string) {
	if err := os.WriteFile(filepath.Join(l.secrets, "tailnet-authkey"), []byte(k+"\n"), 0o600); err != nil {
		l.t.Fatal(err)
	}
}

var nodeKeyRE = regexp.MustCompile(`msg=ready .*node_key=(\S+)`)

func nodeKey(t *testing.T, out string) string {
	t.Helper()
	m := nodeKeyRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no node key in the ready line:\n%s", site.Tail(out, 20))
	}
	return m[1]
}

var ipsRE = regexp.MustCompile(`tailnet_ips="?\[(100\.[0-9.]+)`)

func tailnetIPv4(t *testing.T, out string) string {
	t.Helper()
	m := ipsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tailnet address in the ready line:\n%s", site.Tail(out, 20))
	}
	return m[1]
}

// config writes an ssh_config for the admin's key: OpenSSH passes -F on
// to the jump connection it opens for -J.
func (l *lab) config() string {
	p := l.key + ".config"
	os.WriteFile(p, []byte(fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  ConnectTimeout 20\n", l.key)), 0o600)
	return p
}

// ssh runs OpenSSH's client on the admin's laptop.
func (l *lab) ssh(args ...string) (string, error) {
	return l.admin.Run(append([]string{"ssh", "-F", l.config()}, args...)...)
}

// jumpTailnet is the -J argument through the gate's bastion on the tailnet.
const jumpTailnet = "admin@" + fwdBastion

// reach runs `echo MARK $(hostname -I)` on ceph-1 with ssh args (e.g.
// -J JUMP root@ceph-1), retrying for a minute while the path comes up.
func (l *lab) reach(t *testing.T, mark string, args ...string) {
	t.Helper()
	var out string
	err := netlab.Eventually(60*time.Second, 2*time.Second, func() error {
		var e error
		out, e = l.ssh(append(args, "echo "+mark+" $(hostname -I)")...)
		return e
	})
	if err != nil || !strings.Contains(out, mark+" 192.168.1.11") {
		t.Fatalf("ssh %s: %v\n%s\ngate's tailnet daemon:\n%s", strings.Join(args, " "), err, out, site.Tail(l.proc.Output(), 30))
	}
}

func (l *lab) audit() string {
	b, _ := os.ReadFile(filepath.Join(l.state, "audit.log"))
	return string(b)
}

// TestIntegrationTailnet: the tailnet alone (no vpn section: the
// WireGuard hub is absent and the bastion listens only on the tailnet).
func TestIntegrationTailnet(t *testing.T) {
	l := newLab(t, false)

	t.Run("jump through the bastion", func(t *testing.T) {
		l.reach(t, "on", "-J", jumpTailnet, "root@ceph-1")
	})
	t.Run("audit names the tailnet peer", func(t *testing.T) {
		err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
			a := l.audit()
			if !strings.Contains(a, `"resolved":"192.168.1.11:22"`) || !strings.Contains(a, `"result":"closed"`) ||
				!regexp.MustCompile(`"peer":"[^"]+ on laptop`).MatchString(a) {
				return fmt.Errorf("audit lacks the jump with its peer:\n%s", a)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("target not allowed", func(t *testing.T) {
		out, err := l.ssh("-J", jumpTailnet, "root@compute-1", "true")
		if err == nil || !strings.Contains(out, "administratively prohibited") {
			t.Fatalf("compute-1 reached or wrong message: %v\n%s", err, out)
		}
		for _, target := range []string{"root@192.168.1.21", "root@192.168.1.1", "-p2222 root@ceph-1"} {
			args := append([]string{"-J", jumpTailnet}, strings.Fields(target)...)
			if out, err := l.ssh(append(args, "true")...); err == nil || !strings.Contains(out, "administratively prohibited") {
				t.Errorf("%s: %v\n%s", target, err, out)
			}
		}
		if a := l.audit(); !strings.Contains(a, "may not reach compute-1 port 22") || !strings.Contains(a, "may not reach 192.168.1.1 port 22") {
			t.Errorf("refusals not audited:\n%s", a)
		}
	})
	t.Run("no shell on the bastion", func(t *testing.T) {
		out, err := l.ssh("-p", "2200", "admin@127.0.0.1", "id")
		if err == nil || !strings.Contains(out, "jump host") {
			t.Fatalf("a command ran on the bastion: %v\n%s", err, out)
		}
	})
	t.Run("nut read-only", func(t *testing.T) {
		out, err := l.admin.Output("upsc", "ups@"+fwdNUT, "ups.status")
		if err != nil || strings.TrimSpace(out) != "OL" {
			t.Fatalf("upsc through the tailnet: %q %v", out, err)
		}
		// The lab's upsd grants this user SET: only the relay refuses it.
		out, err = l.admin.Run("upsrw", "-s", "ups.delay.shutdown=25", "-u", nutUser, "-p", nutPass, "ups@"+fwdNUT)
		if err == nil || !strings.Contains(out, "ACCESS-DENIED") {
			t.Errorf("upsrw through the tailnet: %v\n%s", err, out)
		}
		if v, _ := l.nut.Host.Output("upsc", "ups@"+l.nut.Addr, "ups.delay.shutdown"); strings.TrimSpace(v) != "20" {
			t.Errorf("ups.delay.shutdown is %q after the refused SET", v)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		out, err := l.admin.Output("curl", "-sS", "--max-time", "20", "http://"+fwdMetrics+"/metrics")
		if err != nil || !strings.Contains(out, "gate_tailnet_up 1") || !strings.Contains(out, `gate_tailnet_nut_refused_total{command="USERNAME"} 1`) {
			t.Fatalf("metrics on the tailnet: %v\n%s", err, out)
		}
	})
	t.Run("nothing else offered", func(t *testing.T) {
		if out, err := l.admin.Output("curl", "-sS", "--max-time", "10", "http://"+fwdHTTP+"/"); err == nil {
			t.Fatalf("port 80 of the gate answered on the tailnet: %s", out)
		}
	})
	t.Run("LAN route", func(t *testing.T) {
		// advertise_lan: ceph-1 straight, without the bastion (the tailnet's
		// ACL is then the only gate).
		l.reach(t, "routed", "-p", "2211", "root@127.0.0.1")
		// The relay ends with the session (no half-open connection left).
		if err := l.proc.WaitFor(`msg="routed connection"`, 20*time.Second); err != nil {
			t.Errorf("the routed connection did not end: %v", err)
		}
	})
	t.Run("node key survives a restart", func(t *testing.T) {
		if err := l.proc.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, site.Tail(l.proc.Output(), 10))
		}
		before := l.proc.Output()
		l.proc = l.startGate(l.state, "127.0.0.1:9108")
		if err := l.proc.WaitFor("msg=ready", 120*time.Second); err != nil {
			t.Fatal(err, l.proc.Output())
		}
		// The same node: its key came from the state directory (a new
		// node would have a new key and, from testcontrol, a new address).
		if k0, k1 := nodeKey(t, before), nodeKey(t, l.proc.Output()); k0 != k1 {
			t.Fatalf("node key %s after the restart, was %s", k1, k0)
		}
		if ip := tailnetIPv4(t, l.proc.Output()); ip != l.gateIP {
			t.Fatalf("tailnet address %s after the restart, was %s: a new node", ip, l.gateIP)
		}
		l.reach(t, "again", "-J", jumpTailnet, "root@ceph-1")
	})
	t.Run("bad auth key, new state", func(t *testing.T) {
		l.setAuthKey("tskey-auth-wrong")
		p := l.startGate(filepath.Join(l.dir, "fresh-state"), "")
		select {
		case <-p.Done():
		case <-time.After(90 * time.Second):
			t.Fatalf("still running with a refused key:\n%s", p.Output())
		}
		if p.Err() == nil || !strings.Contains(p.Output(), "tailnet.auth_key") {
			t.Fatalf("exit %v, want a failure naming tailnet.auth_key:\n%s", p.Err(), site.Tail(p.Output(), 10))
		}
	})
}
