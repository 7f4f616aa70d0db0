package vpsconfig

import (
	"strings"
	"testing"

	"gate/config"
)

const siteA = `site: {name: a}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-a}
vpn:
  hubs:
    - name: vps-1
      endpoint: vps1.example.net:51820
      public_address: 203.0.113.10
      public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
      gate_address: 10.99.0.2/24
      hub_address: 10.99.0.1
      route_lan: true
hosts:
  - {name: ceph-1, ip: 192.168.1.11, macs: ["52:54:00:00:01:01"], role: ceph}
roles:
  ceph:
    image: {url: "http://192.168.1.2:8080/c.raw", sha256: 0000000000000000000000000000000000000000000000000000000000000000}
bastion:
  host_key: file:hk
  users:
    - name: alice
      keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtQUDhmPpnEbaGEcbrkMTm0e+oVbeqIyQQQUdh2Ep11 a@b]
      allow: ["*:22"]
`

func site(t *testing.T, yaml string, pub string) Site {
	t.Helper()
	c, err := config.Parse("site.yaml", []byte(yaml), t.TempDir())
	if err != nil {
		t.Fatalf("site: %v", err)
	}
	return Site{Config: c, GatePublicKey: pub, BastionHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM/DCsGjvTUlWsq64WjEF0+yS2SnZ4Oe4kx4/B2cR0oT"}
}

func TestRender(t *testing.T) {
	siteB := strings.NewReplacer("{name: a}", "{name: b}", "gate-a", "gate-b", "192.168.1.", "192.168.2.", "10.99.0.", "10.99.1.", "alice", "bob").Replace(siteA)
	clashNet := strings.NewReplacer("{name: a}", "{name: b}", "192.168.1.", "192.168.2.").Replace(siteA)
	clashLAN := strings.NewReplacer("{name: a}", "{name: b}", "10.99.0.", "10.99.1.").Replace(siteA)
	otherKey := strings.Replace(siteB, "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "94ux+bH7IRdsj8pKWqDf7pO5vaF5celnutsCyrlMu0Y=", 1)
	twoHubs := strings.Replace(siteA, "hosts:", `    - name: vps-2
      endpoint: 198.51.100.7:51820
      public_key: 94ux+bH7IRdsj8pKWqDf7pO5vaF5celnutsCyrlMu0Y=
      gate_address: 10.98.0.2/24
      hub_address: 10.98.0.1
      bastion_port: 2200
hosts:`, 1)
	const k1, k2 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
	tests := []struct {
		name    string
		hub     string
		sites   []Site
		want    []string // substrings of the concatenated files
		wantErr string
	}{
		{"one site", "", []Site{site(t, siteA, k1)}, []string{
			"Address = 10.99.0.1/24\n", "ListenPort = 51820\n", "MTU = 1420\n",
			"PublicKey = " + k1 + "\nAllowedIPs = 10.99.0.2/32, 192.168.1.0/24\nPersistentKeepalive = 25\n",
			"ip daddr 203.0.113.10 tcp dport 2222 dnat ip to 10.99.0.2:22",
			"net.ipv4.ip_forward = 1",
			"[vps1.example.net]:2222,[203.0.113.10]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM/DCsGjvTUlWsq64WjEF0+yS2SnZ4Oe4kx4/B2cR0oT",
			"Host ceph-1\n\tHostName 192.168.1.11\n\tProxyJump alice@vps1.example.net:2222\n",
		}, ""},
		{"IPv6 too", "", []Site{site(t, strings.Replace(siteA, "      public_address: 203.0.113.10\n", "      public_address: 203.0.113.10\n      public_address6: \"2001:db8::10\"\n", 1), k1)}, []string{
			"Address = 10.99.0.1/24, fd67:6174:6500::a63:1/120\n",
			"AllowedIPs = 10.99.0.2/32, fd67:6174:6500::a63:2/128, 192.168.1.0/24\n",
			"table inet gate-hub {",
			"ip daddr 203.0.113.10 tcp dport 2222 dnat ip to 10.99.0.2:22",
			"ip6 daddr 2001:db8::10 tcp dport 2222 dnat ip6 to [fd67:6174:6500::a63:2]:22",
			"net.ipv6.conf.all.forwarding = 1",
			"[vps1.example.net]:2222,[203.0.113.10]:2222,[2001:db8::10]:2222 ssh-ed25519",
		}, ""},
		{"two sites share the hub", "vps-1", []Site{site(t, siteA, k1), site(t, siteB, k2)}, nil, "both forward the hub's TCP port 2222"},
		{"two sites, distinct ports", "", []Site{site(t, siteA, k1), site(t, strings.Replace(siteB, "      route_lan: true\n", "      route_lan: true\n      bastion_port: 2223\n", 1), k2)}, []string{
			"Address = 10.99.0.1/24, 10.99.1.1/24\n",
			"PublicKey = " + k2 + "\nAllowedIPs = 10.99.1.2/32, 192.168.2.0/24\n",
			"tcp dport 2223 dnat ip to 10.99.1.2:22",
			"Host a-ceph-1\n\tHostName 192.168.1.11\n\tProxyJump alice@",
			"Host b-ceph-1\n\tHostName 192.168.2.11\n\tProxyJump bob@vps1.example.net:2223\n",
		}, ""},
		{"tunnel networks clash", "", []Site{site(t, siteA, k1), site(t, clashNet, k2)}, nil, "tunnel network 10.99.0.0/24 overlaps site a's tunnel network"},
		{"routed LANs clash", "", []Site{site(t, siteA, k1), site(t, clashLAN, k2)}, nil, "LAN 192.168.1.0/24 overlaps site a's LAN"},
		{"same gate key", "", []Site{site(t, siteA, k1), site(t, siteB, k1)}, nil, "same WireGuard key"},
		{"hub key differs", "", []Site{site(t, siteA, k1), site(t, otherKey, k2)}, nil, "public_key differs"},
		{"unknown hub", "vps-9", []Site{site(t, siteA, k1)}, nil, `no hub "vps-9" (its hubs: vps-1)`},
		{"ambiguous hub", "", []Site{site(t, twoHubs, k1)}, nil, "several hubs (vps-1, vps-2)"},
		{"second hub", "vps-2", []Site{site(t, twoHubs, k1)}, []string{
			"Address = 10.98.0.1/24\n", "ip daddr 198.51.100.7 tcp dport 2200 dnat ip to 10.98.0.2:22", "[198.51.100.7]:2200 ssh-ed25519",
			"AllowedIPs = 10.98.0.2/32\n",
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Render(tt.hub, "", tt.sites)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for _, p := range f.Paths() {
				all.WriteString(p.Text)
			}
			for _, w := range tt.want {
				if !strings.Contains(all.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, all.String())
				}
			}
		})
	}
}
