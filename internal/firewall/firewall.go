// Package firewall is the gate's own input policy, in nftables (table
// inet gate-firewall), set at boot by the firewall program.
//
// The tunnel is the internet's side: on it only the bastion's port (and
// what firewall.tunnel_open names) is open, and its sources must be a
// hub's tunnel address or internet addresses, never the LAN's or any
// other private, loopback or link-local range (checked before routing, so
// that forwarded traffic is held to it too). Everywhere else the gate's
// services (NUT, bootstrapd's DHCP/TFTP/HTTP, the /metrics endpoints,
// gokrazy's web and update UI) answer the LAN's sources only: the LAN
// subnet, IPv6 link-local, and 0.0.0.0 for DHCP. Replies to the gate's own
// connections, ICMP, and the WireGuard port pass.
package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gate/config"
	"gate/internal/daemon"
	"gate/internal/firewall/table"
)

// Table is the nftables table the policy owns (family inet).
const Table = table.Name

// Port is a transport protocol and port.
type Port struct {
	Proto string // tcp or udp
	Port  uint16
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Proto, p.Port) }

// Policy is what the rules say.
type Policy struct {
	// Tunnel is the tunnel's interface ("": no tunnel).
	Tunnel string
	// Hubs are the hubs' tunnel addresses, the only private sources the
	// tunnel may carry.
	Hubs []netip.Addr
	// TunnelOpen are the ports open on the tunnel (the bastion's first).
	TunnelOpen []Port
	// LAN are the sources every service answers.
	LAN []netip.Prefix
	// Public are ports open to any source off the tunnel (WireGuard's).
	Public []Port
}

// NotInternet are the sources the tunnel never carries besides a hub's
// address: private, shared, loopback, link-local, multicast and reserved
// ranges (RFC 6890).
var NotInternet = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
	netip.MustParsePrefix("::/127"),
	netip.MustParsePrefix("::ffff:0:0/96"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// Names that firewall.tunnel_open accepts besides tcp/PORT and udp/PORT.
var named = map[string]func(c *config.Config) []Port{
	"metrics": func(*config.Config) []Port {
		var ps []Port
		for _, a := range daemon.MetricsAddrs() {
			n, _ := strconv.Atoi(strings.TrimPrefix(a, ":"))
			ps = append(ps, Port{"tcp", uint16(n)})
		}
		return ps
	},
	"gokrazy": func(c *config.Config) []Port { return []Port{{"tcp", uint16(c.Gate.HTTPPort)}} },
	"nut": func(c *config.Config) []Port {
		if c.UPS == nil {
			return nil
		}
		var ps []Port
		for _, a := range c.UPS.Listen {
			if _, port, err := net.SplitHostPort(a); err == nil {
				if n, err := strconv.Atoi(port); err == nil {
					ps = append(ps, Port{"tcp", uint16(n)})
				}
			}
		}
		return ps
	},
}

// ParseOpen parses one firewall.tunnel_open entry.
func ParseOpen(c *config.Config, s string) ([]Port, error) {
	if f, ok := named[s]; ok {
		return f(c), nil
	}
	proto, port, err := config.ParseProtoPort(s)
	if err != nil {
		return nil, fmt.Errorf("firewall.tunnel_open: %w (or metrics, gokrazy, nut)", err)
	}
	return []Port{{proto, port}}, nil
}

// FromConfig derives the policy from the site file.
func FromConfig(c *config.Config) (Policy, error) {
	p := Policy{LAN: []netip.Prefix{c.LAN.Subnet.Masked(), netip.MustParsePrefix("fe80::/10")}}
	if c.VPN != nil {
		p.Tunnel = c.VPN.Interface
		for _, h := range c.VPN.Hubs {
			p.Hubs = append(p.Hubs, h.HubAddress)
			if a := h.HubAddress6(); a.IsValid() {
				p.Hubs = append(p.Hubs, a)
			}
		}
		if c.VPN.ListenPort != 0 {
			p.Public = append(p.Public, Port{"udp", uint16(c.VPN.ListenPort)})
		}
	}
	if c.Bastion != nil {
		p.TunnelOpen = append(p.TunnelOpen, Port{"tcp", uint16(c.Bastion.Port)})
	}
	if c.Firewall != nil {
		for _, s := range c.Firewall.TunnelOpen {
			ps, err := ParseOpen(c, s)
			if err != nil {
				return Policy{}, err
			}
			for _, x := range ps {
				if !slices.Contains(p.TunnelOpen, x) {
					p.TunnelOpen = append(p.TunnelOpen, x)
				}
			}
		}
	}
	return p, nil
}

// String says the policy in one line, for the log.
func (p Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lan sources %v", p.LAN)
	if p.Tunnel != "" {
		fmt.Fprintf(&b, "; tunnel %s open %v, private sources only %v", p.Tunnel, p.TunnelOpen, p.Hubs)
	}
	if len(p.Public) > 0 {
		fmt.Fprintf(&b, "; public %v", p.Public)
	}
	return b.String()
}
