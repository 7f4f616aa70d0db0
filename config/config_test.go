package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExampleLoads(t *testing.T) {
	c, err := Parse("example.yaml", Example(), t.TempDir())
	if err != nil {
		t.Fatalf("the embedded example does not load: %v", err)
	}
	if got := len(c.Hosts); got != 4 {
		t.Errorf("hosts: %d, want 4", got)
	}
	if c.VPN == nil || c.UPS == nil || c.DynDNS == nil || c.Bastion == nil || c.Bootstrap == nil {
		t.Errorf("a section of the example is missing: %+v", c)
	}
	// Defaults.
	if c.VPN.Interface != "wg0" || c.UPS.Deadtime.D() != 15*time.Second || c.UPS.Groups[0].Name != "compute" {
		t.Errorf("defaults not applied: iface %q deadtime %s first group %q", c.VPN.Interface, c.UPS.Deadtime.D(), c.UPS.Groups[0].Name)
	}
	if !*c.UPS.TrustLowBatt || c.Bootstrap.HTTPPort != 8080 || c.Hosts[0].Shutdown.NUTUser != "ceph-1" {
		t.Errorf("defaults not applied")
	}
	// Every secret of the example can be generated: only warnings.
	for _, w := range c.Warnings() {
		if !strings.Contains(w.Message, "gate secrets init") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
}

// minimal is the smallest valid site file.
const minimal = `site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
`

func TestMinimalHasNoDaemons(t *testing.T) {
	c, err := Parse("site.yaml", []byte(minimal), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.VPN != nil || c.UPS != nil || c.DynDNS != nil || c.Bastion != nil || c.Bootstrap != nil {
		t.Error("absent sections decoded as present")
	}
	if c.Gate.Address != "dhcp" || c.Gate.Hostname != "gate" || c.LAN.DNS[0] != c.LAN.Gateway {
		t.Errorf("gate defaults: %+v, dns %v", c.Gate, c.LAN.DNS)
	}
	if !slices.Equal(c.Time.Servers, DefaultNTPServers()) || c.Time.Wait.D() != 10*time.Minute {
		t.Errorf("time defaults: %+v", c.Time)
	}
}

func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // "LINE:COL: substring", every one must be reported
	}{
		{"unknown key", minimal + "gate: {hostnme: x}\n", []string{"3:8: gate.hostnme: unknown key"}},
		{"unknown top-level", minimal + "vpns: {}\n", []string{"3:1: vpns: unknown key"}},
		{"malformed mac and duplicate", minimal + `roles: {ceph: {image: {url: "http://x/i.raw", sha256: "` + strings.Repeat("a", 64) + `"}}}
hosts:
  - {name: a, macs: ["52:54:00:00:00:01"], ip: 10.1.0.10, role: ceph}
  - {name: a, macs: ["zz:54"], ip: 10.1.0.10, role: cephh}
`, []string{
			"6:12: hosts[1].name: host name \"a\" used twice",
			"6:22: hosts[1].macs[0]: malformed MAC",
			"6:36: hosts[1].ip: address 10.1.0.10 used twice",
			"6:53: hosts[1].role: unknown role \"cephh\"",
		}},
		{"address outside the LAN", minimal + "gate: {address: 10.2.0.5/24}\n", []string{"3:17: gate.address: 10.2.0.5 is outside the LAN"}},
		{"endpoint without port, bad key, bad duration", minimal + `vpn:
  keepalive: 25 seconds
  hubs:
    - name: v
      endpoint: vps.example.net
      public_key: nope
      gate_address: 10.99.0.2/24
      hub_address: 10.98.0.1
`, []string{
			"4:14: vpn.keepalive: malformed duration",
			"7:17: vpn.hubs[0].endpoint: endpoint \"vps.example.net\" has no port",
			"8:19: vpn.hubs[0].public_key: malformed WireGuard key",
			"10:20: vpn.hubs[0].hub_address: 10.98.0.1 is outside the tunnel network",
		}},
		{"NUT user rights", minimal + `ups:
  source: usb
  users: [{name: a, password: "file:a", actions: [SET, shutdown], instcmds: ["load off"]}]
`, []string{
			"ups.users[0].actions[1]: unknown action \"shutdown\"",
			"ups.users[0].instcmds[0]: \"load off\" is not a command name",
		}},
		{"thresholds out of range", minimal + `ups:
  source: usb
  thresholds: {charge: 140, runtime: 5s}
  delays: {shutdown: 30s, start: 20s}
`, []string{
			"5:24: ups.thresholds.charge: 140% out of range",
			"5:38: ups.thresholds.runtime",
			"6:34: ups.delays.start: 20s must exceed the shutdown delay",
		}},
		{"the way back", minimal + `ups:
  source: usb
  return: {min_charge: 101, wake_after: 1s, wake_tries: 101}
roles: {ceph: {installer: {kernel: "http://x/k"}}}
hosts: [{name: c, macs: ["52:54:00:00:00:01"], ip: 10.1.0.10, role: ceph, shutdown: {group: ceph, wake: magic}}]
`, []string{
			"ups.return.min_charge: 101% out of range",
			"ups.return.wake_after: 1s out of range",
			"ups.return.wake_tries: 101 out of range",
			"hosts[0].shutdown.wake: unknown way \"magic\" (wol or none)",
		}},
		{"record outside its zone", minimal + `dyndns:
  provider: {type: rfc2136, server: "ns.example.org:53", zone: example.org, tsig_key: k, tsig_secret: "file:tsig"}
  records: [{name: home.example.net}]
`, []string{"5:20: dyndns.records[0].name: home.example.net is outside the zone example.org"}},
		{"secret references", minimal + `gate: {password: "gokrazy"}
vpn:
  private_key: "env:GATE_TEST_NOT_SET_EVER"
  hubs: [{name: v, endpoint: "1.2.3.4:51820", public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, gate_address: 10.99.0.2/24, hub_address: 10.99.0.1}]
dyndns:
  provider: {type: cloudflare, zone: example.org, token: "file:../../etc/passwd"}
  records: [{name: a.example.org}]
`, []string{
			"3:18: gate.password: secret reference \"gokrazy\" has no scheme",
			"5:16: vpn.private_key: environment variable GATE_TEST_NOT_SET_EVER is not set",
			"8:58: dyndns.provider.token: secret file name \"../../etc/passwd\" is not a plain file name",
		}},
		{"unknown shutdown group", minimal + `ups: {source: usb}
roles: {ceph: {installer: {kernel: "http://x/k"}}}
hosts: [{name: c, macs: ["52:54:00:00:00:01"], ip: 10.1.0.10, role: ceph, shutdown: {group: storage}}]
`, []string{"5:93: hosts[0].shutdown.group: unknown shutdown group \"storage\""}},
		{"wrong shapes", minimal + `hosts: {name: x}
bastion: {port: twenty, users: [{name: a, keys: [not-a-key], allow: ["ceph-9:22", "*:99999"]}], listen_lan: true}
`, []string{
			"3:8: hosts: expected a list",
			"4:17: bastion.port: \"twenty\" is not a whole number",
			"4:50: bastion.users[0].keys[0]: malformed SSH public key",
			"4:70: bastion.users[0].allow[0]: unknown host \"ceph-9\"",
			"4:83: bastion.users[0].allow[1]: port \"99999\" out of range",
		}},
		{"hub by name without public_address, with a bastion", minimal + `vpn:
  hubs: [{name: v, endpoint: "vps.example.net:51820", public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, gate_address: 10.99.0.2/24, hub_address: 10.99.0.1}]
bastion: {users: [{name: a, keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl3TlqHKU6SvyTbdJdBFtN+5mCn8f9ViDGhAZkEmc7Q a"], allow: ["*:22"]}]}
`, []string{"vpn.hubs[0].public_address: missing: the endpoint vps.example.net is a name"}},
		{"hub addresses of the wrong family", minimal + `vpn:
  hubs: [{name: v, endpoint: "vps.example.net:51820", public_address: "2001:db8::1", public_address6: 192.0.2.1, public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, gate_address: "fd00::2/64", hub_address: "fd00::1"}]
`, []string{
			"vpn.hubs[0].public_address: 2001:db8::1 is not an IPv4 address",
			"vpn.hubs[0].public_address6: 192.0.2.1 is not an IPv6 address",
			"vpn.hubs[0].gate_address: fd00::2/64 is not an IPv4 prefix",
		}},
		{"time servers", minimal + `time: {servers: ["ntp.example.org", "192.168.1.1:123", "bad name!", "ntp.example.org:x"], wait: -1s}
`, []string{
			"time.servers[2]: \"bad name!\" is neither an IP address nor a DNS name",
			"time.servers[3]: \"ntp.example.org:x\": port \"x\" is not a number",
			"time.wait: negative duration",
		}},
		{"not yaml", "site: [\n", []string{"not valid YAML"}},
		{"empty", "", []string{"1:1: the site file is empty"}},
		{"missing basics", "gate: {}\n", []string{"site.name: missing", "lan.subnet: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("site.yaml", []byte(tc.yaml), t.TempDir())
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want Problems", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			for _, p := range ps {
				if !strings.HasPrefix(p.String(), "site.yaml:") {
					t.Errorf("problem without FILE:LINE:COL: %s", p)
				}
			}
		})
	}
}

func TestSecretsInit(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse("example.yaml", Example(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// A secret that already exists is never overwritten.
	keep := filepath.Join(dir, "nut-admin")
	if err := os.WriteFile(keep, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := c.InitSecrets()
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, r := range res {
		if r.Created {
			created++
		}
	}
	if created != len(res)-1 {
		t.Errorf("created %d of %d; results %+v", created, len(res), res)
	}
	if b, _ := os.ReadFile(keep); string(b) != "mine\n" {
		t.Errorf("existing secret overwritten: %q", b)
	}
	for _, name := range []string{"wireguard.key", "ssh_host_ed25519_key", "gokrazy-password", "dynhost-password"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	wg, err := c.ReadSecret("file:wireguard.key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := WireGuardPublicKey(wg)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "wireguard.key.pub")); strings.TrimSpace(string(b)) != pub {
		t.Errorf("wireguard.key.pub %q does not match the private key's %q", b, pub)
	}
	// Now the file loads without warnings, and a second init creates nothing.
	c, err = Parse("example.yaml", Example(), dir)
	if err != nil || len(c.Warnings()) != 0 {
		t.Fatalf("after init: %v, warnings %v", err, c.Warnings())
	}
	res, err = c.InitSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Created {
			t.Errorf("second init created %s", r.Ref.Name)
		}
	}
}

func TestParseNUTURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want NUTSource
		err  bool
	}{
		{"nut://10.0.0.5/eaton", NUTSource{Addr: "10.0.0.5:3493", UPS: "eaton"}, false},
		{"nut://mon@ups.lan:3494/ups1", NUTSource{User: "mon", Addr: "ups.lan:3494", UPS: "ups1"}, false},
		{"nut://host", NUTSource{}, true},
		{"http://host/ups", NUTSource{}, true},
	} {
		got, err := ParseNUTURL(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseNUTURL(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Example())
	f.Add([]byte(minimal))
	f.Add([]byte("hosts: [{macs: [1], ip: x}]\nroles: {a: }\n"))
	f.Add([]byte("a: &x [*x]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data, dir)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		var ps Problems
		if err != nil && errors.As(err, &ps) {
			for _, p := range ps {
				if p.Pos.Line < 0 || p.Message == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
		}
	})
}

func TestAliasBombs(t *testing.T) {
	for _, in := range []string{
		"hosts: &x [*x]\n",
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nhosts: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
	} {
		if _, err := Parse("bomb.yaml", []byte(in), t.TempDir()); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func TestDynDNSAPIProviders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provider string
		ttl      string
		errs     []string // substrings of the fatal problems; none: it loads
		warnings []string
	}{
		{"cloudflare", `{type: cloudflare, zone: example.org, token: "env:CF_TOKEN"}`, "60s", nil, nil},
		{"desec derives its domain", `{type: desec, token: "env:CF_TOKEN"}`, "1h", nil, nil},
		{"desec raises a short TTL", `{type: desec, zone: example.org, token: "env:CF_TOKEN"}`, "60s", nil,
			[]string{"6:37: warning: dyndns.records[0].ttl: desec publishes no TTL below 1h: this record is published with a TTL of 1h"}},
		{"gandi raises a short TTL", `{type: gandi, zone: example.org, token: "env:CF_TOKEN", server: "https://127.0.0.1:8080/v5/livedns"}`, "1m", nil,
			[]string{"dyndns.records[0].ttl: gandi publishes no TTL below 5m:"}},
		{"hetzner needs a zone and a token", `{type: hetzner}`, "60s",
			[]string{"dyndns.provider.token: missing", "dyndns.provider.zone: missing"}, nil},
		{"a server that is no URL", `{type: cloudflare, zone: example.org, token: "env:CF_TOKEN", server: "api.example"}`, "60s",
			[]string{"dyndns.provider.server: malformed URL"}, nil},
		{"a token over http", `{type: hetzner, zone: example.org, token: "env:CF_TOKEN", server: "http://dns.example/api/v1"}`, "60s",
			[]string{"dyndns.provider.server: \"http://dns.example/api/v1\": credentials are sent there, https:// only"}, nil},
		{"a password over http", `{type: dyndns2, preset: ovh, server: "http://dns.example", username: u, password: "env:CF_TOKEN"}`, "60s",
			[]string{"credentials are sent there, https:// only"}, nil},
		{"verify and refresh intervals too short", `{type: cloudflare, zone: example.org, token: "env:CF_TOKEN"}` + "\n  verify_interval: 1s\n  max_interval: 10m", "60s",
			[]string{"dyndns.verify_interval: 1s is too short", "dyndns.max_interval: 10m0s is too short"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CF_TOKEN", "t0ken")
			y := minimal + "dyndns:\n  provider: " + tc.provider + "\n  records:\n    - {name: home.example.org, ttl: " + tc.ttl + "}\n"
			c, err := Parse("site.yaml", []byte(y), t.TempDir())
			for _, w := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in: %v", w, err)
				}
			}
			if len(tc.errs) > 0 {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ws string
			for _, w := range c.Warnings() {
				if strings.HasPrefix(w.Path, "dyndns") {
					ws += w.String() + "\n"
				}
			}
			if len(tc.warnings) == 0 && ws != "" {
				t.Errorf("unexpected warnings: %s", ws)
			}
			for _, w := range tc.warnings {
				if !strings.Contains(ws, w) {
					t.Errorf("missing warning %q in: %s", w, ws)
				}
			}
		})
	}
}

// The pre-steps (k3s-drain, ceph-noout) and their undo run over SSH on a
// group's hosts: those hosts get the shutdown key even when they shut
// down over NUT, so that `gate secrets init` makes it.
func TestPreStepHostsGetTheShutdownKey(t *testing.T) {
	c, err := Parse("site.yaml", []byte(minimal+`ups:
  source: usb
  users: [{name: c, password: "file:nut-c"}, {name: d, password: "file:nut-d"}]
  shutdown_groups: [{name: compute, pre_steps: [k3s-drain]}, {name: other}]
roles: {compute: {installer: {kernel: "http://x/k"}}}
hosts:
  - {name: c, macs: ["52:54:00:00:00:01"], ip: 10.1.0.10, role: compute}
  - {name: d, macs: ["52:54:00:00:00:02"], ip: 10.1.0.11, role: compute, shutdown: {group: other}}
`), t.TempDir())
	var ps Problems
	if err != nil && !errors.As(err, &ps) {
		t.Fatal(err)
	}
	if c == nil {
		t.Fatalf("not loaded: %v", err)
	}
	if got := c.Hosts[0].Shutdown.SSHKey; got != "file:shutdown_ed25519_key" {
		t.Errorf("host in a group with pre-steps: ssh_key %q", got)
	}
	if got := c.Hosts[1].Shutdown.SSHKey; got != "" {
		t.Errorf("host in a group without pre-steps: ssh_key %q", got)
	}
}

// TestHubIPv6: an IPv6 endpoint or public_address6 gives the tunnel IPv6
// addresses derived from the IPv4 ones; without one there are none.
func TestHubIPv6(t *testing.T) {
	for _, tc := range []struct {
		hub              string
		pub6, gate, hub6 string // "" : none
	}{
		{`endpoint: "[2001:db8::10]:51820", public_address: 203.0.113.10`, "2001:db8::10", "fd67:6174:6500::a63:2/120", "fd67:6174:6500::a63:1"},
		{`endpoint: "vps.example.net:51820", public_address: 203.0.113.10, public_address6: "2001:db8::10"`, "2001:db8::10", "fd67:6174:6500::a63:2/120", "fd67:6174:6500::a63:1"},
		{`endpoint: "203.0.113.10:51820"`, "", "", ""},
	} {
		y := minimal + "vpn:\n  hubs: [{name: v, " + tc.hub + ", public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, gate_address: 10.99.0.2/24, hub_address: 10.99.0.1}]\n"
		c, err := Parse("site.yaml", []byte(y), t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", tc.hub, err)
		}
		h := c.VPN.Hubs[0]
		str := func(v interface {
			IsValid() bool
			String() string
		}) string {
			if !v.IsValid() {
				return ""
			}
			return v.String()
		}
		if str(h.PublicAddress6) != tc.pub6 || str(h.GateAddress6()) != tc.gate || str(h.HubAddress6()) != tc.hub6 {
			t.Errorf("%s: public_address6 %q, gate %q, hub %q; want %q %q %q", tc.hub, str(h.PublicAddress6), str(h.GateAddress6()), str(h.HubAddress6()), tc.pub6, tc.gate, tc.hub6)
		}
	}
}
