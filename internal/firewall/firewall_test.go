package firewall

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"gate/config"
)

const base = `site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
`

const vpn = `vpn:
  interface: wg7
  listen_port: 51999
  hubs:
    - {name: a, endpoint: "203.0.113.1:51820", public_key: "bnVsbG51bGxudWxsbnVsbG51bGxudWxsbnVsbG51bGw=", gate_address: 10.99.0.2/24, hub_address: 10.99.0.1}
    - {name: b, endpoint: "203.0.113.2:51820", public_key: "bnVsbG51bGxudWxsbnVsbG51bGxudWxsbnVsbG51bGw=", gate_address: 10.98.0.2/24, hub_address: 10.98.0.1}
`

const bastion = `bastion:
  port: 2222
  users: [{name: a, keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3h3vV0cdbNpG9m8q2j7Cwlq0rM5H8Kx8Qv1c7o0eXQ a"], allow: ["*:22"]}]
`

func TestFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want string // Policy.String()
	}{
		{"LAN only", base, "lan sources [192.168.1.0/24 fe80::/10]"},
		{"tunnel and bastion", base + vpn + bastion,
			"lan sources [192.168.1.0/24 fe80::/10]; tunnel wg7 open [tcp/2222], private sources only [10.99.0.1 10.98.0.1]; public [udp/51999]"},
		{"hub with IPv6: its IPv6 tunnel address is a hub's", base + strings.Replace(vpn, `"203.0.113.1:51820"`, `"[2001:db8::1]:51820", public_address: 203.0.113.1`, 1) + bastion,
			"lan sources [192.168.1.0/24 fe80::/10]; tunnel wg7 open [tcp/2222], private sources only [10.99.0.1 fd67:6174:6500::a63:1 10.98.0.1]; public [udp/51999]"},
		{"tunnel without bastion", base + vpn,
			"lan sources [192.168.1.0/24 fe80::/10]; tunnel wg7 open [], private sources only [10.99.0.1 10.98.0.1]; public [udp/51999]"},
		{"opened", base + vpn + bastion + "ups: {source: usb, listen: [\":3493\", \"192.168.1.2:3500\"]}\nfirewall: {tunnel_open: [metrics, nut, gokrazy, udp/53, tcp/2222]}\n",
			"lan sources [192.168.1.0/24 fe80::/10]; tunnel wg7 open [tcp/2222 tcp/9101 tcp/9102 tcp/9103 tcp/9104 tcp/9105 tcp/9106 tcp/9107 tcp/9108 tcp/3493 tcp/3500 tcp/80 udp/53], private sources only [10.99.0.1 10.98.0.1]; public [udp/51999]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("site.yaml", []byte(tc.yaml), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p, err := FromConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tc.want {
				t.Errorf("policy\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBadOpen(t *testing.T) {
	for _, o := range []string{"ssh", "tcp/0", "tcp/70000", "sctp/5", "tcp/"} {
		_, err := config.Parse("site.yaml", []byte(base+fmt.Sprintf("firewall: {tunnel_open: [%q]}\n", o)), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "firewall.tunnel_open[0]") {
			t.Errorf("%q: %v", o, err)
		}
	}
}

// Every range the tunnel must not carry is outside the internet, and the
// internet is outside all of them.
func TestNotInternet(t *testing.T) {
	for _, a := range []string{"192.168.1.11", "10.99.0.5", "100.64.1.1", "127.0.0.1", "::1", "fd00::1", "fe80::1", "::ffff:192.168.1.1", "169.254.1.1"} {
		if !inAny(netip.MustParseAddr(a)) {
			t.Errorf("%s passes the tunnel", a)
		}
	}
	for _, a := range []string{"203.0.113.7", "8.8.8.8", "2001:db8::1", "2a01::1"} {
		if inAny(netip.MustParseAddr(a)) {
			t.Errorf("%s is refused on the tunnel", a)
		}
	}
}

func inAny(a netip.Addr) bool {
	for _, p := range NotInternet {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
