// Package vpsconfig renders what a VPS hub needs to serve one or several
// sites' gates: its WireGuard configuration (wg-quick format) with each
// gate as a peer, the nftables rules that forward each bastion's public TCP
// port through the tunnel, the sysctls, the bastions' host key lines for
// the admins' known_hosts and an ssh_config snippet for the admins.
//
// Forwarded bastion connections keep their source address, so that the
// bastion logs and bans the admins' real addresses: the gate routes what
// its tunnel address answers back through the tunnel (internal/wgtunnel's
// policy routing), and the hub's conntrack undoes the DNAT on the way out.
package vpsconfig

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gate/config"
)

// Site is one site served by the hub, with what the site file alone does
// not say.
type Site struct {
	Config *config.Config
	// GatePublicKey is the gate's WireGuard public key (base64), derived
	// from the site's private key secret.
	GatePublicKey string
	// BastionHostKey is the bastion's public host key in authorized_keys
	// format ("ssh-ed25519 AAAA... comment"); "" when there is no bastion.
	BastionHostKey string
}

// Files is the rendered hub configuration, one text per file.
type Files struct {
	Interface  string // the hub's WireGuard interface, e.g. wg0
	WireGuard  string // /etc/wireguard/IFACE.conf (wg-quick)
	NFTables   string // /etc/nftables.d/gate-hub.nft
	Sysctl     string // /etc/sysctl.d/99-gate-hub.conf
	KnownHosts string // lines for the admins' ~/.ssh/known_hosts
	SSHConfig  string // a snippet for the admins' ~/.ssh/config
}

// Paths are where the files go on the VPS (or the admin's machine), in
// the order Files lists them.
func (f *Files) Paths() []struct{ Path, Name, Text string } {
	return []struct{ Path, Name, Text string }{
		{"/etc/wireguard/" + f.Interface + ".conf", f.Interface + ".conf", f.WireGuard},
		{"/etc/nftables.d/gate-hub.nft", "gate-hub.nft", f.NFTables},
		{"/etc/sysctl.d/99-gate-hub.conf", "99-gate-hub.conf", f.Sysctl},
		{"~/.ssh/known_hosts (admins: append)", "known_hosts", f.KnownHosts},
		{"~/.ssh/config (admins: append)", "ssh_config", f.SSHConfig},
	}
}

// served is one site's view of the hub.
type served struct {
	Site
	name string
	hub  config.Hub
}

// HubNames lists the hub names the sites have in common, in the first
// site's order.
func HubNames(sites []Site) []string {
	var names []string
	for i, s := range sites {
		var these []string
		if s.Config.VPN != nil {
			for _, h := range s.Config.VPN.Hubs {
				these = append(these, h.Name)
			}
		}
		if i == 0 {
			names = these
			continue
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(these, n) })
	}
	return names
}

// Render makes the configuration of the hub named hubName ("" when the
// sites have exactly one hub in common) for the sites, whose tunnel
// networks, bastion ports and routed LANs must not clash. iface is the
// hub's WireGuard interface name (wg0 when "").
func Render(hubName, iface string, sites []Site) (*Files, error) {
	if len(sites) == 0 {
		return nil, errors.New("no site")
	}
	if iface == "" {
		iface = "wg0"
	}
	for _, s := range sites {
		if s.Config.VPN == nil {
			return nil, fmt.Errorf("site %s (%s) has no vpn section: no hub serves it", siteName(s.Config), s.Config.File)
		}
	}
	if hubName == "" {
		names := HubNames(sites)
		switch len(names) {
		case 0:
			return nil, errors.New("the sites have no hub name in common (name the hub: gate vps-config HUB)")
		case 1:
			hubName = names[0]
		default:
			return nil, fmt.Errorf("several hubs (%s): name the one to configure", strings.Join(names, ", "))
		}
	}
	var ss []served
	for _, s := range sites {
		var hub *config.Hub
		var names []string
		for i := range s.Config.VPN.Hubs {
			names = append(names, s.Config.VPN.Hubs[i].Name)
			if s.Config.VPN.Hubs[i].Name == hubName {
				hub = &s.Config.VPN.Hubs[i]
			}
		}
		if hub == nil {
			return nil, fmt.Errorf("site %s has no hub %q (its hubs: %s)", siteName(s.Config), hubName, strings.Join(names, ", "))
		}
		ss = append(ss, served{Site: s, name: siteName(s.Config), hub: *hub})
	}
	if err := check(ss); err != nil {
		return nil, err
	}
	f := &Files{Interface: iface}
	f.WireGuard = renderWG(ss, iface)
	f.NFTables = renderNFT(ss)
	f.Sysctl = "# gate vps-config: the hub forwards between its public interface and the tunnel.\nnet.ipv4.ip_forward = 1\n"
	if ss[0].hub.PublicAddress6.IsValid() {
		// Forwarding turns off the acceptance of router advertisements
		// where accept_ra is 1: a VPS that takes its IPv6 address or route
		// from RAs needs 2 on its public interface.
		f.Sysctl += "# IPv6 too (public_address6). If the VPS gets its IPv6 address or default route from router\n" +
			"# advertisements, also set net.ipv6.conf.<its public interface>.accept_ra = 2.\nnet.ipv6.conf.all.forwarding = 1\n"
	}
	f.KnownHosts = renderKnownHosts(ss)
	f.SSHConfig = renderSSHConfig(ss)
	return f, nil
}

func siteName(c *config.Config) string {
	if c.Site.Name != "" {
		return c.Site.Name
	}
	return c.File
}

// check refuses sites that cannot share the hub.
func check(ss []served) error {
	first := ss[0]
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	keys := map[string]string{}
	ports := map[int]string{}
	type net struct {
		p    netip.Prefix
		what string
	}
	var nets []net
	for _, s := range ss {
		h := s.hub
		if h.PublicKey != first.hub.PublicKey {
			bad("hub %s: public_key differs between sites %s and %s (one VPS, one key)", h.Name, first.name, s.name)
		}
		if listenPort(h) != listenPort(first.hub) {
			bad("hub %s: WireGuard port differs between sites %s (%d) and %s (%d)", h.Name, first.name, listenPort(first.hub), s.name, listenPort(h))
		}
		if h.PublicAddress != first.hub.PublicAddress {
			bad("hub %s: public_address differs between sites %s (%s) and %s (%s)", h.Name, first.name, first.hub.PublicAddress, s.name, h.PublicAddress)
		}
		if h.PublicAddress6 != first.hub.PublicAddress6 {
			bad("hub %s: public_address6 differs between sites %s (%s) and %s (%s)", h.Name, first.name, first.hub.PublicAddress6, s.name, h.PublicAddress6)
		}
		if h.MTU != first.hub.MTU {
			bad("hub %s: mtu differs between sites %s (%d) and %s (%d)", h.Name, first.name, first.hub.MTU, s.name, h.MTU)
		}
		if other, ok := keys[s.GatePublicKey]; ok {
			bad("sites %s and %s have the same WireGuard key (each gate needs its own: gate secrets init)", other, s.name)
		}
		keys[s.GatePublicKey] = s.name
		if s.Config.Bastion != nil {
			if other, ok := ports[h.BastionPort]; ok {
				bad("sites %s and %s both forward the hub's TCP port %d to their bastion (set distinct bastion_port)", other, s.name, h.BastionPort)
			}
			ports[h.BastionPort] = s.name
			if !h.PublicAddress.IsValid() && !h.PublicAddress6.IsValid() {
				bad("site %s, hub %s: no public_address (the VPS's public IP, for the bastion's port forwarding)", s.name, h.Name)
			}
		}
		add := func(p netip.Prefix, what string) {
			for _, n := range nets {
				if n.p.Overlaps(p) {
					bad("%s %s overlaps %s %s (distinct networks, e.g. 10.99.1.0/24 for the second site)", what, p, n.what, n.p)
				}
			}
			nets = append(nets, net{p, what})
		}
		add(h.GateAddress.Masked(), "site "+s.name+"'s tunnel network")
		if h.RouteLAN && s.Config.LAN.Subnet.IsValid() {
			add(s.Config.LAN.Subnet.Masked(), "site "+s.name+"'s LAN")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func listenPort(h config.Hub) int {
	if h.ListenPort != 0 {
		return h.ListenPort
	}
	_, p, err := net.SplitHostPort(h.Endpoint)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func endpointHost(h config.Hub) string {
	host, _, err := net.SplitHostPort(h.Endpoint)
	if err != nil {
		return ""
	}
	return host
}

func siteList(ss []served) string {
	var n []string
	for _, s := range ss {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

func renderWG(ss []served, iface string) string {
	h := ss[0].hub
	var b strings.Builder
	fmt.Fprintf(&b, "# WireGuard hub %s for site(s) %s, generated by `gate vps-config`.\n", h.Name, siteList(ss))
	fmt.Fprintf(&b, "# Install as /etc/wireguard/%s.conf, then: systemctl enable --now wg-quick@%s\n", iface, iface)
	fmt.Fprintf(&b, "# The hub's private key is not in any site file: keep it in /etc/wireguard/%s.key\n", iface)
	fmt.Fprintf(&b, "# (umask 077; wg genkey > /etc/wireguard/%s.key); `wg pubkey < /etc/wireguard/%s.key`\n", iface, iface)
	fmt.Fprintf(&b, "# must print the sites' vpn.hubs public_key: %s\n", h.PublicKey)
	b.WriteString("[Interface]\n")
	var addrs []string
	for _, s := range ss {
		addrs = append(addrs, netip.PrefixFrom(s.hub.HubAddress, s.hub.GateAddress.Bits()).String())
		if a := s.hub.HubAddress6(); a.IsValid() {
			addrs = append(addrs, netip.PrefixFrom(a, s.hub.GateAddress6().Bits()).String())
		}
	}
	fmt.Fprintf(&b, "Address = %s\n", strings.Join(addrs, ", "))
	fmt.Fprintf(&b, "ListenPort = %d\n", listenPort(h))
	fmt.Fprintf(&b, "MTU = %d\n", h.MTU)
	b.WriteString("PostUp = wg set %i private-key /etc/wireguard/%i.key\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "\n# site %s: the gate %s\n", s.name, s.Config.Gate.Hostname)
		b.WriteString("[Peer]\n")
		fmt.Fprintf(&b, "PublicKey = %s\n", s.GatePublicKey)
		allowed := []string{netip.PrefixFrom(s.hub.GateAddress.Addr(), s.hub.GateAddress.Addr().BitLen()).String()}
		if a := s.hub.GateAddress6(); a.IsValid() {
			allowed = append(allowed, netip.PrefixFrom(a.Addr(), 128).String())
		}
		if s.hub.RouteLAN && s.Config.LAN.Subnet.IsValid() {
			allowed = append(allowed, s.Config.LAN.Subnet.Masked().String())
		}
		fmt.Fprintf(&b, "AllowedIPs = %s\n", strings.Join(allowed, ", "))
		// The gate is behind NAT: no endpoint here, the hub learns it
		// from the gate's packets. Its keepalive helps keep the mapping.
		ka := 25
		if v := s.Config.VPN.Keepalive.D(); v > 0 {
			ka = int(v.Seconds())
		}
		fmt.Fprintf(&b, "PersistentKeepalive = %d\n", ka)
	}
	return b.String()
}

func bastionPort(c *config.Config) int {
	if c.Bastion == nil || c.Bastion.Port == 0 {
		return 22
	}
	return c.Bastion.Port
}

func renderNFT(ss []served) string {
	var b strings.Builder
	h := ss[0].hub
	fmt.Fprintf(&b, "#!/usr/sbin/nft -f\n# Hub %s: forwarding of the bastions' public ports, generated by `gate vps-config`.\n", h.Name)
	b.WriteString("# Load with `nft -f gate-hub.nft` (or include it from /etc/nftables.conf).\n")
	b.WriteString("# If your own forward chain's policy is drop, accept `ct status dnat` there.\n")
	// inet: IPv4 and, for a hub with public_address6, IPv6 to the gate's
	// IPv6 tunnel address.
	b.WriteString("table inet gate-hub\ndelete table inet gate-hub\ntable inet gate-hub {\n")
	var pre []string
	for _, s := range ss {
		if s.Config.Bastion == nil {
			continue
		}
		port := bastionPort(s.Config)
		if s.hub.PublicAddress.IsValid() {
			pre = append(pre, fmt.Sprintf("\t\tip daddr %s tcp dport %d dnat ip to %s comment \"site %s: bastion\"",
				s.hub.PublicAddress, s.hub.BastionPort, netip.AddrPortFrom(s.hub.GateAddress.Addr(), uint16(port)), s.name))
		}
		if a := s.hub.GateAddress6(); a.IsValid() {
			pre = append(pre, fmt.Sprintf("\t\tip6 daddr %s tcp dport %d dnat ip6 to %s comment \"site %s: bastion over IPv6\"",
				s.hub.PublicAddress6, s.hub.BastionPort, netip.AddrPortFrom(a.Addr(), uint16(port)), s.name))
		}
	}
	// No masquerade: the bastion sees the admins' addresses; the gate
	// answers them through the tunnel (its policy routing).
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	for _, l := range pre {
		b.WriteString(l + "\n")
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// jumpHosts are the names admins may use for the hub: its endpoint's name
// (when it is one) and its public address.
func jumpHosts(h config.Hub) []string {
	var hs []string
	if host := endpointHost(h); host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			hs = append(hs, host)
		}
	}
	if h.PublicAddress.IsValid() {
		hs = append(hs, h.PublicAddress.String())
	}
	if h.PublicAddress6.IsValid() {
		hs = append(hs, h.PublicAddress6.String())
	}
	return hs
}

func renderKnownHosts(ss []served) string {
	var b strings.Builder
	for _, s := range ss {
		if s.Config.Bastion == nil || s.BastionHostKey == "" {
			continue
		}
		var names []string
		for _, host := range jumpHosts(s.hub) {
			names = append(names, fmt.Sprintf("[%s]:%d", host, s.hub.BastionPort))
		}
		key := strings.Fields(s.BastionHostKey)
		if len(key) < 2 || len(names) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s %s %s gate bastion of site %s\n", strings.Join(names, ","), key[0], key[1], s.name)
	}
	return b.String()
}

func renderSSHConfig(ss []served) string {
	var b strings.Builder
	seen := map[string]int{}
	for _, s := range ss {
		for _, h := range s.Config.Hosts {
			seen[h.Name]++
		}
	}
	for _, s := range ss {
		if s.Config.Bastion == nil || len(s.Config.Bastion.Users) == 0 {
			continue
		}
		hs := jumpHosts(s.hub)
		if len(hs) == 0 {
			continue
		}
		var users []string
		for _, u := range s.Config.Bastion.Users {
			users = append(users, u.Name)
		}
		fmt.Fprintf(&b, "# Site %s through hub %s (bastion users: %s; use yours in ProxyJump).\n", s.name, s.hub.Name, strings.Join(users, ", "))
		jump := fmt.Sprintf("%s@%s:%d", users[0], hs[0], s.hub.BastionPort)
		for _, h := range s.Config.Hosts {
			if !h.IP.IsValid() {
				continue
			}
			alias := h.Name
			if seen[h.Name] > 1 {
				alias = s.name + "-" + h.Name
			}
			fmt.Fprintf(&b, "Host %s\n\tHostName %s\n\tProxyJump %s\n", alias, h.IP, jump)
		}
		b.WriteString("\n")
	}
	return b.String()
}
