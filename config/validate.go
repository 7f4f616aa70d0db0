package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // site.timezone on the gate, whose root has no zone database
)

type validator struct {
	c        *Config
	problems Problems
}

// at finds the position of path, or of its nearest parent in the file.
func (v *validator) at(path string) Pos {
	for p := path; p != ""; {
		if pos, ok := v.c.pos[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Pos{1, 1}
}

func (v *validator) errf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Pos: v.at(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Pos: v.at(path), Path: path, Message: fmt.Sprintf(format, args...), Warning: true})
}

var (
	hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	userRE     = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
)

// validate checks everything decoding could not, and returns every problem.
func (c *Config) validate() Problems {
	v := &validator{c: c}
	v.site()
	v.lan()
	v.gate()
	v.time()
	if c.VPN != nil {
		v.vpn()
	}
	if c.DynDNS != nil {
		v.dyndns()
	}
	if c.UPS != nil {
		v.ups()
	}
	v.hosts()
	v.roles()
	if c.Bastion != nil {
		v.bastion()
	}
	if c.Bootstrap != nil {
		v.bootstrap()
	}
	if c.Status != nil {
		v.status()
	}
	if c.Alerts != nil {
		v.alerts()
	}
	if c.Tailnet != nil {
		v.tailnet()
	}
	if c.Firewall != nil {
		v.firewall()
	}
	v.secrets()
	return v.problems
}

func (v *validator) site() {
	s := v.c.Site
	if s.Name == "" {
		v.errf("site.name", "missing (a short name for the site, e.g. home)")
	} else if !hostnameRE.MatchString(s.Name) {
		v.errf("site.name", "%q is not a valid name (lowercase letters, digits and -)", s.Name)
	}
	if s.Domain != "" && !validFQDN(s.Domain) {
		v.errf("site.domain", "%q is not a valid domain name (e.g. home.example.org)", s.Domain)
	}
	if _, err := time.LoadLocation(s.Timezone); err != nil {
		v.errf("site.timezone", "unknown time zone %q (an IANA name such as Europe/Paris, or UTC)", s.Timezone)
	}
}

func validFQDN(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !hostnameRE.MatchString(strings.ToLower(l)) {
			return false
		}
	}
	return true
}

func (v *validator) lan() {
	l := v.c.LAN
	if !l.Subnet.IsValid() {
		v.errf("lan.subnet", "missing (the LAN's network, e.g. 192.168.1.0/24)")
		return
	}
	if l.Subnet != l.Subnet.Masked() {
		v.errf("lan.subnet", "%s has host bits set (the network address: %s)", l.Subnet, l.Subnet.Masked())
	}
	if !l.Gateway.IsValid() {
		v.errf("lan.gateway", "missing (the ISP box's LAN address, e.g. 192.168.1.1)")
	} else if !l.Subnet.Contains(l.Gateway) {
		v.errf("lan.gateway", "%s is outside the LAN %s (an address inside it)", l.Gateway, l.Subnet)
	}
}

// inLAN reports an address outside the LAN.
func (v *validator) inLAN(path string, a netip.Addr) {
	if a.IsValid() && v.c.LAN.Subnet.IsValid() && !v.c.LAN.Subnet.Contains(a) {
		v.errf(path, "%s is outside the LAN %s (an address inside it)", a, v.c.LAN.Subnet)
	}
}

func (v *validator) gate() {
	g := v.c.Gate
	if !hostnameRE.MatchString(g.Hostname) {
		v.errf("gate.hostname", "%q is not a valid host name (lowercase letters, digits and -)", g.Hostname)
	}
	if g.Address != "dhcp" {
		p, err := netip.ParsePrefix(g.Address)
		switch {
		case err != nil:
			v.errf("gate.address", "%q is neither dhcp nor an address with prefix length (e.g. 192.168.1.2/24)", g.Address)
		case v.c.LAN.Subnet.IsValid() && p.Bits() != v.c.LAN.Subnet.Bits():
			v.errf("gate.address", "prefix length /%d differs from the LAN's /%d", p.Bits(), v.c.LAN.Subnet.Bits())
		default:
			v.inLAN("gate.address", p.Addr())
			if p.Addr() == v.c.LAN.Gateway {
				v.errf("gate.address", "%s is the ISP box's address (another free address)", p.Addr())
			}
		}
	}
	switch g.Model {
	case "rpi3", "rpi4", "rpi5", "pc":
	default:
		v.errf("gate.model", "unknown model %q (rpi3, rpi4, rpi5 or pc)", g.Model)
	}
	v.port("gate.http_port", g.HTTPPort)
}

func (v *validator) time() {
	for i, s := range v.c.Time.Servers {
		path := fmt.Sprintf("time.servers[%d]", i)
		host, port := s, "123"
		if h, p, err := net.SplitHostPort(s); err == nil {
			host, port = h, p
		}
		if n, err := strconv.Atoi(port); err != nil {
			v.errf(path, "%q: port %q is not a number (host or host:port, e.g. 0.pool.ntp.org or 192.168.1.1:123)", s, port)
		} else {
			v.port(path, n)
		}
		if _, err := netip.ParseAddr(host); err != nil && !validFQDN(host) {
			v.errf(path, "%q is neither an IP address nor a DNS name (e.g. 0.pool.ntp.org)", s)
		}
	}
	if v.c.Time.Wait.D() < 0 {
		v.errf("time.wait", "negative duration %s", v.c.Time.Wait.D())
	}
}

// GateAddr returns the gate's static LAN address, if it has one.
func (c *Config) GateAddr() (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(c.Gate.Address)
	return p, err == nil
}

func (v *validator) port(path string, p int) {
	if p < 1 || p > 65535 {
		v.errf(path, "port %d out of range (1 to 65535)", p)
	}
}

// splitEndpoint checks host:port.
func splitEndpoint(ep string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(ep)
	if err != nil {
		return "", 0, fmt.Errorf("endpoint %q has no port (host:port, e.g. vps.example.net:51820 or [2001:db8::1]:51820)", ep)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("endpoint %q: port %q out of range (1 to 65535)", ep, p)
	}
	if h == "" {
		return "", 0, fmt.Errorf("endpoint %q has no host", ep)
	}
	if _, err := netip.ParseAddr(h); err != nil && !validFQDN(h) {
		return "", 0, fmt.Errorf("endpoint %q: %q is neither an IP nor a host name", ep, h)
	}
	return h, n, nil
}

func (v *validator) vpn() {
	vp := v.c.VPN
	if len(vp.Hubs) == 0 {
		v.errf("vpn.hubs", "no hub (at least one VPS: name, endpoint, public_key, gate_address, hub_address)")
	}
	if vp.Keepalive.D() > 0 && (vp.Keepalive.D() < time.Second || vp.Keepalive.D() > time.Hour) {
		v.errf("vpn.keepalive", "%s out of range (1s to 1h; 25s behind NAT)", vp.Keepalive.D())
	}
	// The floor is 10s, not 30s: the gate probes the active hub with a
	// datagram every keepalive interval and a live hub answers at once, so
	// silence is measured on traffic, not on the 2-minute handshakes; the
	// integration tests use 10-15s to stay short.
	if vp.FailAfter.D() < 10*time.Second {
		v.errf("vpn.failover_after", "%s is too short (at least 10s, and more than the keepalive; 90s is the default)", vp.FailAfter.D())
	} else if vp.Keepalive.D() > 0 && vp.FailAfter.D() < 3*vp.Keepalive.D() {
		v.errf("vpn.failover_after", "%s is shorter than 3 keepalives (vpn.keepalive %s): a live hub could look silent", vp.FailAfter.D(), vp.Keepalive.D())
	}
	names := map[string]bool{}
	nets := map[netip.Prefix]string{}
	for i, h := range vp.Hubs {
		p := fmt.Sprintf("vpn.hubs[%d]", i)
		if h.Name == "" {
			v.errf(p+".name", "missing (e.g. vps-1)")
		} else if names[h.Name] {
			v.errf(p+".name", "hub name %q used twice (unique names)", h.Name)
		}
		names[h.Name] = true
		if h.Endpoint == "" {
			v.errf(p+".endpoint", "missing (the VPS's public name or IP with the WireGuard port)")
		} else if host, _, err := splitEndpoint(h.Endpoint); err != nil {
			v.errf(p+".endpoint", "%v", err)
		} else if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
			if !h.PublicAddress6.IsValid() {
				vp.Hubs[i].PublicAddress6 = a
			}
		} else if err == nil && !h.PublicAddress.IsValid() {
			vp.Hubs[i].PublicAddress = a
		} else if err != nil && !h.PublicAddress.IsValid() && !h.PublicAddress6.IsValid() && v.c.Bastion != nil {
			// gate vps-config forwards the bastion's port on this
			// address: say it now, not when the VPS is configured.
			v.errf(p+".public_address", "missing: the endpoint %s is a name, and the VPS's public IP is needed to forward the bastion's port %d on it (e.g. public_address: 203.0.113.10)", host, h.BastionPort)
		}
		if a := h.PublicAddress; a.IsValid() && !a.Is4() {
			v.errf(p+".public_address", "%s is not an IPv4 address (an IPv6 one goes in public_address6)", a)
		}
		if a := h.PublicAddress6; a.IsValid() && (!a.Is6() || a.Is4In6()) {
			v.errf(p+".public_address6", "%s is not an IPv6 address", a)
		}
		if h.PublicKey.IsZero() {
			v.errf(p+".public_key", "missing (the VPS's WireGuard public key: wg pubkey < its private key)")
		}
		if !h.GateAddress.IsValid() {
			v.errf(p+".gate_address", "missing (the gate's tunnel address with prefix, e.g. 10.99.0.2/24)")
		}
		if h.GateAddress.IsValid() && !h.GateAddress.Addr().Is4() {
			v.errf(p+".gate_address", "%s is not an IPv4 prefix (the IPv6 tunnel addresses are derived from it, see public_address6)", h.GateAddress)
		}
		if !h.HubAddress.IsValid() {
			v.errf(p+".hub_address", "missing (the VPS's tunnel address, e.g. 10.99.0.1)")
		}
		if h.GateAddress.IsValid() && h.HubAddress.IsValid() {
			if !h.GateAddress.Masked().Contains(h.HubAddress) {
				v.errf(p+".hub_address", "%s is outside the tunnel network %s (an address inside it)", h.HubAddress, h.GateAddress.Masked())
			}
			if h.GateAddress.Addr() == h.HubAddress {
				v.errf(p+".hub_address", "same as the gate's tunnel address (another address)")
			}
			if v.c.LAN.Subnet.IsValid() && h.GateAddress.Masked().Overlaps(v.c.LAN.Subnet) {
				v.errf(p+".gate_address", "tunnel network %s overlaps the LAN %s (a separate network, e.g. 10.99.0.0/24)", h.GateAddress.Masked(), v.c.LAN.Subnet)
			}
			if other, ok := nets[h.GateAddress.Masked()]; ok {
				_ = other // several hubs may share one tunnel subnet
			}
			nets[h.GateAddress.Masked()] = h.Name
		}
		if h.MTU < 1280 || h.MTU > 1500 {
			v.errf(p+".mtu", "MTU %d out of range (1280 to 1500; 1420 usually, 1400 when the path adds encapsulation)", h.MTU)
		}
		v.port(p+".bastion_port", h.BastionPort)
		if h.ListenPort != 0 {
			v.port(p+".listen_port", h.ListenPort)
		}
	}
}

func (v *validator) dyndns() {
	d := v.c.DynDNS
	// The interval paces the address sources (the box over UPnP is local);
	// providers are only contacted when the address changed.
	if d.Interval.D() < 5*time.Second {
		v.errf("dyndns.interval", "%s is too short (at least 5s; HTTP echo services are asked this often)", d.Interval.D())
	}
	if d.VerifyInterval.D() < 5*time.Second {
		v.errf("dyndns.verify_interval", "%s is too short (at least 5s; the record is read from its provider this often)", d.VerifyInterval.D())
	}
	if d.MaxInterval.D() < time.Hour {
		v.errf("dyndns.max_interval", "%s is too short (at least 1h; providers treat frequent unchanged updates as abuse)", d.MaxInterval.D())
	}
	switch d.Agree {
	case "first", "majority", "all":
	default:
		v.errf("dyndns.agree", "unknown rule %q (first, majority or all)", d.Agree)
	}
	for i, s := range d.Sources {
		p := fmt.Sprintf("dyndns.sources[%d]", i)
		switch s.Type {
		case "upnp":
		case "http":
			v.url(p+".url", s.URL, true)
		case "interface":
			if s.Family == "ipv6" && d.IPv6Suffix.IsValid() && !d.IPv6Suffix.Is6() {
				v.errf("dyndns.ipv6_suffix", "%s is not an IPv6 suffix (e.g. ::1234:5678)", d.IPv6Suffix)
			}
		default:
			v.errf(p+".type", "unknown source %q (upnp, http or interface)", s.Type)
		}
		if s.Family != "ipv4" && s.Family != "ipv6" {
			v.errf(p+".family", "unknown family %q (ipv4 or ipv6)", s.Family)
		}
	}
	pr := d.Provider
	switch pr.Type {
	case "rfc2136":
		if _, _, err := splitEndpoint(pr.Server); err != nil {
			v.errf("dyndns.provider.server", "%v", err)
		}
		if pr.Zone == "" {
			v.errf("dyndns.provider.zone", "missing (the zone the records are in, e.g. example.org)")
		}
		if pr.TSIGKey == "" {
			v.errf("dyndns.provider.tsig_key", "missing (the TSIG key's name as the DNS server knows it)")
		}
		if !pr.TSIG.IsSet() {
			v.errf("dyndns.provider.tsig_secret", "missing (e.g. file:tsig.key)")
		}
		switch pr.TSIGAlg {
		case "hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-sha224", "hmac-sha384":
		default:
			v.errf("dyndns.provider.tsig_algorithm", "unknown algorithm %q (hmac-sha256)", pr.TSIGAlg)
		}
	case "dyndns2":
		switch pr.Preset {
		case "", "ovh", "noip", "dynu", "infomaniak", "dyndns":
		default:
			v.errf("dyndns.provider.preset", "unknown preset %q (ovh, noip, dynu, infomaniak, dyndns; or none with server)", pr.Preset)
		}
		if pr.Preset == "" || pr.Server != "" {
			v.httpsURL("dyndns.provider.server", pr.Server)
		}
		if pr.Username == "" {
			v.errf("dyndns.provider.username", "missing (the provider's login for this record)")
		}
		if !pr.Password.IsSet() {
			v.errf("dyndns.provider.password", "missing (e.g. file:dyndns-password)")
		}
	case "cloudflare", "desec", "gandi", "hetzner":
		if !pr.Token.IsSet() {
			v.errf("dyndns.provider.token", "missing (the provider's API token, e.g. file:%s-token)", pr.Type)
		}
		if pr.Server != "" {
			v.httpsURL("dyndns.provider.server", pr.Server)
		}
		if pr.Zone == "" && pr.Type != "desec" {
			v.errf("dyndns.provider.zone", "missing (the zone the records are in)")
		}
	case "":
		v.errf("dyndns.provider.type", "missing (rfc2136, dyndns2, cloudflare, desec, gandi or hetzner)")
	default:
		v.errf("dyndns.provider.type", "unknown provider %q (rfc2136, dyndns2, cloudflare, desec, gandi or hetzner)", pr.Type)
	}
	if len(d.Records) == 0 {
		v.errf("dyndns.records", "no record (at least one: name, type A or AAAA)")
	}
	seen := map[string]bool{}
	for i, r := range d.Records {
		p := fmt.Sprintf("dyndns.records[%d]", i)
		if !validFQDN(r.Name) {
			v.errf(p+".name", "%q is not a domain name (e.g. home.example.org)", r.Name)
		} else if pr.Zone != "" && !InZone(r.Name, pr.Zone) {
			v.errf(p+".name", "%s is outside the zone %s (a name ending in .%s)", r.Name, pr.Zone, strings.TrimSuffix(pr.Zone, "."))
		}
		if r.Type != "A" && r.Type != "AAAA" {
			v.errf(p+".type", "unknown record type %q (A or AAAA)", r.Type)
		}
		key := strings.ToLower(strings.TrimSuffix(r.Name, ".")) + "/" + r.Type
		if seen[key] {
			v.errf(p, "record %s %s given twice", r.Name, r.Type)
		}
		seen[key] = true
		if r.TTL.D() < time.Second || r.TTL.D() > 24*time.Hour {
			v.errf(p+".ttl", "TTL %s out of range (1s to 24h; 60s suits a dynamic address)", r.TTL.D())
		} else if least := apiMinTTL(pr.Type); r.TTL.D() < least {
			short := strings.TrimSuffix(strings.TrimSuffix(least.String(), "0s"), "0m") // 1h, 5m
			v.warnf(p+".ttl", "%s publishes no TTL below %s: this record is published with a TTL of %s", pr.Type, short, short)
		}
	}
}

// apiMinTTL is the smallest TTL an HTTP-API DNS provider accepts
// (deSEC's is the domain's minimum_ttl, 1h unless deSEC granted less);
// internal/dyndns raises shorter ones to it. 0: no minimum.
func apiMinTTL(provider string) time.Duration {
	switch provider {
	case "cloudflare":
		return time.Minute
	case "desec":
		return time.Hour
	case "gandi":
		return 5 * time.Minute
	}
	return 0
}

// InZone reports whether name is zone or below it.
func InZone(name, zone string) bool {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	z := strings.ToLower(strings.TrimSuffix(zone, "."))
	return n == z || strings.HasSuffix(n, "."+z)
}

func (v *validator) url(path, s string, required bool) {
	if s == "" {
		if required {
			v.errf(path, "missing (an http:// or https:// URL)")
		}
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errf(path, "malformed URL %q (an http:// or https:// URL with a host)", s)
	}
}

// httpsURL checks a required URL that credentials are sent to: https only.
func (v *validator) httpsURL(path, s string) {
	v.url(path, s, true)
	if strings.HasPrefix(strings.ToLower(s), "http://") {
		v.errf(path, "%q: credentials are sent there, https:// only", s)
	}
}

func (v *validator) ups() {
	u := v.c.UPS
	if !hostnameRE.MatchString(u.Name) {
		v.errf("ups.name", "%q is not a valid UPS name (lowercase letters, digits and -)", u.Name)
	}
	switch {
	case u.Source == "usb":
	case strings.HasPrefix(u.Source, "nut://"):
		if _, err := ParseNUTURL(u.Source); err != nil {
			v.errf("ups.source", "%v", err)
		}
	case u.Source == "":
		v.errf("ups.source", "missing (usb, or nut://host[:port]/upsname)")
	default:
		v.errf("ups.source", "unknown source %q (usb, or nut://host[:port]/upsname)", u.Source)
	}
	for i, l := range u.Listen {
		if _, _, err := net.SplitHostPort(l); err != nil {
			v.errf(fmt.Sprintf("ups.listen[%d]", i), "%q has no port (host:port, e.g. :3493)", l)
		}
	}
	t := u.Thresholds
	if t.Charge < 0 || t.Charge > 100 {
		v.errf("ups.thresholds.charge", "%d%% out of range (0 to 100; 0 disables)", t.Charge)
	}
	if t.Runtime.D() > 0 && t.Runtime.D() < 30*time.Second {
		v.errf("ups.thresholds.runtime", "%s leaves no time to shut down (at least 30s)", t.Runtime.D())
	}
	if u.Deadtime.D() < 5*time.Second || u.Deadtime.D() > 10*time.Minute {
		v.errf("ups.deadtime", "%s out of range (5s to 10m)", u.Deadtime.D())
	}
	if u.PollInterval.D() < 500*time.Millisecond || u.PollInterval.D() >= u.Deadtime.D() {
		v.errf("ups.poll_interval", "%s out of range (500ms up to less than deadtime %s)", u.PollInterval.D(), u.Deadtime.D())
	}
	if u.Delays.Start.D() <= u.Delays.Shutdown.D() {
		v.errf("ups.delays.start", "%s must exceed the shutdown delay %s, or the UPS may never switch back on", u.Delays.Start.D(), u.Delays.Shutdown.D())
	}
	if u.Delays.Shutdown.D() > 0 && u.Delays.Shutdown.D() < 5*time.Second {
		v.errf("ups.delays.shutdown", "%s is too short for the gate to power itself off first (at least 5s)", u.Delays.Shutdown.D())
	}
	users := map[string]bool{}
	for i, n := range u.Users {
		p := fmt.Sprintf("ups.users[%d]", i)
		if !userRE.MatchString(n.Name) {
			v.errf(p+".name", "%q is not a valid user name (lowercase letters, digits, _ . -)", n.Name)
		}
		if users[n.Name] {
			v.errf(p+".name", "user %q given twice (unique names)", n.Name)
		}
		users[n.Name] = true
		if !n.Password.IsSet() {
			v.errf(p+".password", "missing (e.g. file:nut-%s)", n.Name)
		}
		switch n.Role {
		case "secondary", "primary", "admin":
		default:
			v.errf(p+".role", "unknown role %q (secondary, primary or admin)", n.Role)
		}
		for j, a := range n.Actions {
			if !strings.EqualFold(a, "SET") && !strings.EqualFold(a, "FSD") {
				v.errf(fmt.Sprintf("%s.actions[%d]", p, j), "unknown action %q (SET or FSD, as in upsd.users)", a)
			}
		}
		for j, c := range n.Instcmds {
			if c == "" || strings.ContainsAny(c, " \t\"") {
				v.errf(fmt.Sprintf("%s.instcmds[%d]", p, j), "%q is not a command name (e.g. load.off, or ALL)", c)
			}
		}
	}
	groups := map[string]bool{}
	for i, g := range u.Groups {
		p := fmt.Sprintf("ups.shutdown_groups[%d]", i)
		if g.Name == "" {
			v.errf(p+".name", "missing (e.g. compute)")
		}
		if groups[g.Name] {
			v.errf(p+".name", "group %q given twice (unique names)", g.Name)
		}
		groups[g.Name] = true
		if g.Timeout.D() < 10*time.Second {
			v.errf(p+".timeout", "%s is too short (at least 10s)", g.Timeout.D())
		}
		for j, s := range g.PreSteps {
			if s != "k3s-drain" && s != "ceph-noout" {
				v.errf(fmt.Sprintf("%s.pre_steps[%d]", p, j), "unknown step %q (k3s-drain or ceph-noout)", s)
			}
		}
	}
	r := u.Return
	if *r.MinCharge < 0 || *r.MinCharge > 100 {
		v.errf("ups.return.min_charge", "%d%% out of range (0 to 100; 0: line power is enough)", *r.MinCharge)
	}
	if r.WakeAfter.D() < 10*time.Second || r.WakeAfter.D() > time.Hour {
		v.errf("ups.return.wake_after", "%s out of range (10s to 1h)", r.WakeAfter.D())
	}
	if r.WakeTries < 1 || r.WakeTries > 100 {
		v.errf("ups.return.wake_tries", "%d out of range (1 to 100)", r.WakeTries)
	}
}

// NUTSource is a parsed nut:// source URL.
type NUTSource struct {
	User string
	Addr string // host:port
	UPS  string
}

// ParseNUTURL parses nut://[user@]host[:port]/upsname.
func ParseNUTURL(s string) (NUTSource, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "nut" || u.Host == "" {
		return NUTSource{}, fmt.Errorf("malformed NUT source %q (nut://host[:port]/upsname)", s)
	}
	name := strings.Trim(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return NUTSource{}, fmt.Errorf("NUT source %q names no UPS (nut://host[:port]/upsname)", s)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "3493")
	}
	return NUTSource{User: u.User.Username(), Addr: addr, UPS: name}, nil
}

func (v *validator) hosts() {
	names := map[string]string{}
	macs := map[string]string{}
	ips := map[netip.Addr]string{}
	if gp, ok := v.c.GateAddr(); ok {
		ips[gp.Addr()] = "the gate"
	}
	if v.c.LAN.Gateway.IsValid() {
		ips[v.c.LAN.Gateway] = "the ISP box"
	}
	groups := map[string]bool{}
	if v.c.UPS != nil {
		for _, g := range v.c.UPS.Groups {
			groups[g.Name] = true
		}
	}
	nutUsers := map[string]bool{}
	if v.c.UPS != nil {
		for _, u := range v.c.UPS.Users {
			nutUsers[u.Name] = true
		}
	}
	for i, h := range v.c.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		switch {
		case !hostnameRE.MatchString(h.Name):
			v.errf(p+".name", "%q is not a valid host name (lowercase letters, digits and -)", h.Name)
		case h.Name == v.c.Gate.Hostname:
			v.errf(p+".name", "%q is the gate's own name", h.Name)
		case names[h.Name] != "":
			v.errf(p+".name", "host name %q used twice (also %s)", h.Name, names[h.Name])
		}
		names[h.Name] = p
		if len(h.MACs) == 0 {
			v.errf(p+".macs", "missing (the host's NIC address(es), for PXE)")
		}
		for j, m := range h.MACs {
			k := m.String()
			if o, ok := macs[k]; ok {
				v.errf(fmt.Sprintf("%s.macs[%d]", p, j), "MAC %s used twice (also %s)", k, o)
			}
			macs[k] = h.Name
		}
		if !h.IP.IsValid() {
			v.errf(p+".ip", "missing (the host's LAN address, reserved on the box)")
		} else {
			v.inLAN(p+".ip", h.IP)
			if o, ok := ips[h.IP]; ok {
				v.errf(p+".ip", "address %s used twice (also %s)", h.IP, o)
			}
			ips[h.IP] = h.Name
		}
		roles := "one of: " + strings.Join(v.c.roleNames(), ", ")
		if len(v.c.Roles) == 0 {
			roles = "no roles are defined: add a roles section"
		}
		if h.Role == "" {
			v.errf(p+".role", "missing (%s)", roles)
		} else if _, ok := v.c.Roles[h.Role]; !ok {
			v.errf(p+".role", "unknown role %q (%s)", h.Role, roles)
		}
		if h.Disk != "" && !strings.HasPrefix(h.Disk, "/dev/") {
			v.errf(p+".disk", "%q is not a device path (e.g. /dev/nvme0n1, /dev/sda)", h.Disk)
		}
		switch h.BootLocal {
		case "auto", "sanboot", "exit":
		default:
			v.errf(p+".boot_local", "unknown way %q (auto, sanboot or exit)", h.BootLocal)
		}
		s := h.Shutdown
		if v.c.UPS != nil && !groups[s.Group] {
			v.errf(p+".shutdown.group", "unknown shutdown group %q (one of ups.shutdown_groups: %s)", s.Group, strings.Join(v.c.groupNames(), ", "))
		}
		switch s.Method {
		case "nut":
			if v.c.UPS != nil && !nutUsers[s.NUTUser] {
				v.errf(p+".shutdown.nut_user", "no NUT user %q in ups.users (add one, or set nut_user)", s.NUTUser)
			}
		case "ssh":
			if !userRE.MatchString(s.SSHUser) {
				v.errf(p+".shutdown.ssh_user", "%q is not a valid user name", s.SSHUser)
			}
		default:
			v.errf(p+".shutdown.method", "unknown method %q (nut or ssh)", s.Method)
		}
		if s.Wake != "wol" && s.Wake != "none" {
			v.errf(p+".shutdown.wake", "unknown way %q (wol or none)", s.Wake)
		}
	}
}

func (c *Config) roleNames() []string {
	var out []string
	for n := range c.Roles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (c *Config) groupNames() []string {
	var out []string
	if c.UPS != nil {
		for _, g := range c.UPS.Groups {
			out = append(out, g.Name)
		}
	}
	return out
}

func (v *validator) roles() {
	for _, name := range v.c.roleNames() {
		r := v.c.Roles[name]
		p := "roles." + name
		if r == nil {
			v.errf(p, "empty role (give image or installer)")
			continue
		}
		if !hostnameRE.MatchString(name) {
			v.errf(p, "%q is not a valid role name (lowercase letters, digits and -)", name)
		}
		switch {
		case r.Image == nil && r.Installer == nil:
			v.errf(p, "role %s has no image and no installer (one of them)", name)
		case r.Image != nil && r.Installer != nil:
			v.errf(p+".installer", "role %s has both image and installer (one of them)", name)
		}
		if im := r.Image; im != nil {
			v.url(p+".image.url", im.URL, true)
			if !sha256RE.MatchString(im.SHA256) {
				v.errf(p+".image.sha256", "%q is not a SHA-256 (64 lowercase hex digits, as sha256sum prints)", im.SHA256)
			}
			if im.Format != "raw" && im.Format != "zstd" {
				v.errf(p+".image.format", "unknown format %q (raw or zstd)", im.Format)
			}
		}
		if in := r.Installer; in != nil {
			v.url(p+".installer.kernel", in.Kernel, true)
			v.url(p+".installer.initrd", in.Initrd, false)
		}
		switch r.K3s {
		case "", "server", "agent":
		default:
			v.errf(p+".k3s", "unknown k3s mode %q (server or agent)", r.K3s)
		}
		for f, t := range map[string]string{"user_data": r.CloudInit.UserData, "vendor_data": r.CloudInit.VendorData, "network_config": r.CloudInit.NetworkConfig} {
			if _, err := template.New(f).Parse(t); err != nil {
				v.errf(p+".cloud_init."+f, "template does not parse: %v", err)
			}
		}
	}
}

func (v *validator) bastion() {
	b := v.c.Bastion
	v.port("bastion.port", b.Port)
	if len(b.Users) == 0 {
		v.errf("bastion.users", "no user (at least one admin with SSH keys)")
	}
	if v.c.VPN == nil && !b.ListenLAN && !v.c.Tailnet.Offers("bastion") {
		v.errf("bastion", "no vpn section, listen_lan is false and the tailnet does not offer it: the bastion would listen nowhere")
	}
	if b.BanAfter < 1 {
		v.errf("bastion.ban_after", "%d: must be at least 1 (failed logins from one source before a ban)", b.BanAfter)
	}
	if b.BanFor.D() <= 0 {
		v.errf("bastion.ban_for", "%s: must be positive (how long a source stays banned)", b.BanFor.D())
	}
	users := map[string]bool{}
	hosts := map[string]bool{}
	for _, h := range v.c.Hosts {
		hosts[h.Name] = true
	}
	for i, u := range b.Users {
		p := fmt.Sprintf("bastion.users[%d]", i)
		if !userRE.MatchString(u.Name) {
			v.errf(p+".name", "%q is not a valid user name (lowercase letters, digits, _ . -)", u.Name)
		}
		if users[u.Name] {
			v.errf(p+".name", "user %q given twice (unique names)", u.Name)
		}
		users[u.Name] = true
		if len(u.Keys) == 0 {
			v.errf(p+".keys", "no key (authorized_keys lines; passwords are never accepted)")
		}
		if len(u.Allow) == 0 {
			v.errf(p+".allow", "user may reach nothing (host:port entries, e.g. \"*:22\")")
		}
		for j, a := range u.Allow {
			h, port, err := net.SplitHostPort(a)
			ap := fmt.Sprintf("%s.allow[%d]", p, j)
			if err != nil {
				v.errf(ap, "%q is not host:port (e.g. ceph-1:22, *:22, 192.168.1.50:443)", a)
				continue
			}
			if port != "*" {
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					v.errf(ap, "port %q out of range (1 to 65535, or *)", port)
				}
			}
			if h == "*" || hosts[h] {
				continue
			}
			if a, err := netip.ParseAddr(h); err == nil {
				v.inLAN(ap, a)
				continue
			}
			v.errf(ap, "unknown host %q (a host name from hosts, a LAN IP, or *)", h)
		}
	}
}

var tagRE = regexp.MustCompile(`^tag:[a-z0-9][a-z0-9-]{0,62}$`)

func (v *validator) tailnet() {
	t := v.c.Tailnet
	v.url("tailnet.control_url", t.ControlURL, true)
	if !hostnameRE.MatchString(t.Hostname) {
		v.errf("tailnet.hostname", "%q is not a valid host name (lowercase letters, digits and -)", t.Hostname)
	}
	for i, tag := range t.Tags {
		if !tagRE.MatchString(tag) {
			v.errf(fmt.Sprintf("tailnet.tags[%d]", i), "%q is not a tag (tag:NAME, NAME in lowercase letters, digits and -)", tag)
		}
	}
	if len(t.Services) == 0 && !t.AdvertiseLAN {
		v.errf("tailnet.services", "empty and advertise_lan is false: the gate would offer nothing on the tailnet (bastion, nut, metrics)")
	}
	seen := map[string]bool{}
	for i, s := range t.Services {
		p := fmt.Sprintf("tailnet.services[%d]", i)
		if seen[s] {
			v.errf(p, "%q given twice", s)
		}
		seen[s] = true
		switch s {
		case "bastion":
			if v.c.Bastion == nil {
				v.errf(p, "bastion offered but the site file has no bastion section (its users and allow lists)")
			}
		case "nut":
			if v.c.UPS == nil {
				v.errf(p, "nut offered but the site file has no ups section")
			}
		case "status":
			if v.c.Status == nil {
				v.errf(p, "status offered but the site file has no status section")
			}
		case "metrics":
		default:
			v.errf(p, "unknown service %q (bastion, nut, status or metrics)", s)
		}
	}
}

func (v *validator) bootstrap() {
	b := v.c.Bootstrap
	v.port("bootstrap.http_port", b.HTTPPort)
	switch b.DHCP {
	case "proxy":
	case "full":
		if _, ok := v.c.GateAddr(); !ok {
			v.errf("bootstrap.dhcp", "full DHCP needs a static gate.address")
		}
		if !b.PoolStart.IsValid() || !b.PoolEnd.IsValid() {
			v.errf("bootstrap.pool_start", "full DHCP needs pool_start and pool_end")
		} else {
			v.inLAN("bootstrap.pool_start", b.PoolStart)
			v.inLAN("bootstrap.pool_end", b.PoolEnd)
			if b.PoolEnd.Less(b.PoolStart) {
				v.errf("bootstrap.pool_end", "%s comes before pool_start %s", b.PoolEnd, b.PoolStart)
			}
		}
	default:
		v.errf("bootstrap.dhcp", "unknown mode %q (proxy, beside the ISP box's DHCP; or full)", b.DHCP)
	}
	if len(v.c.Hosts) == 0 {
		v.warnf("bootstrap", "no hosts: bootstrapd will answer nobody")
	}
}

// secrets checks that every reference is well formed and resolves; a
// missing file that `gate secrets init` can create is only a warning.
func (v *validator) secrets() {
	walkSecretsPaths(v.c, func(path string, s Secret, kind string) {
		if !s.IsSet() {
			return
		}
		scheme, name, err := s.parse()
		if err != nil {
			v.errf(path, "%v", err)
			return
		}
		if scheme == "inline" {
			v.warnf(path, "secret written inline in the site file (move it to file:NAME in the secrets directory)")
			return
		}
		_, err = v.c.ReadSecret(s)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrSecretMissing) {
			v.errf(path, "%v", err)
			return
		}
		if scheme == "file" && kind != KindExternal && kind != "" {
			v.warnf(path, "%s does not exist yet (`gate secrets init` creates it)", filepath.Join(v.c.SecretsDir, name))
			return
		}
		if scheme == "env" {
			v.errf(path, "environment variable %s is not set (set it, or use file:NAME)", name)
			return
		}
		v.errf(path, "%s does not exist (write the value issued by the provider there)", filepath.Join(v.c.SecretsDir, name))
	})
}

func walkSecretsPaths(c *Config, fn func(string, Secret, string)) {
	walkSecrets(reflect.ValueOf(c).Elem(), "", fn)
}

func (v *validator) firewall() {
	for i, o := range v.c.Firewall.TunnelOpen {
		switch o {
		case "metrics", "gokrazy", "nut":
			continue
		}
		if _, _, err := ParseProtoPort(o); err != nil {
			v.errf(fmt.Sprintf("firewall.tunnel_open[%d]", i), "%v (or metrics, gokrazy, nut)", err)
		}
	}
}

// ParseProtoPort parses "tcp/PORT" or "udp/PORT".
func ParseProtoPort(s string) (proto string, port uint16, err error) {
	proto, p, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(p)
	if !ok || (proto != "tcp" && proto != "udp") || err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("%q is not tcp/PORT or udp/PORT", s)
	}
	return proto, uint16(n), nil
}
