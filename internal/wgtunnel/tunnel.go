// Package wgtunnel keeps the gate's WireGuard tunnel to the site's VPS
// hubs up, whatever happens to the home line.
//
// The interface is kernel WireGuard (a wireguard link configured over
// generic netlink with wgctrl) when the kernel has it, as gokrazy's kernels
// do, and golang.zx2c4.com/wireguard in this process on a kernel TUN
// otherwise; the choice and its reason are logged, and Options.Backend can
// force either. Everything above the backend is the same.
//
// Every hub of the site file is a peer, with a persistent keepalive, so
// that the standby hubs stay warm; only the active hub has allowed IPs
// (any source: the hub forwards the admins' connections to the bastion
// without rewriting their source, and routing rules send what the gate's
// tunnel addresses answer back through the tunnel; see policy.go). Every keepalive interval the tunnel sends one
// small datagram to the active hub's tunnel address: a live hub answers
// (at least WireGuard's passive keepalive, 10 s later), and a hub that
// lost the session makes WireGuard handshake again. The hub is "heard"
// when its last handshake or received bytes advance.
//
//   - silent for half of failover_after: the hub's name is resolved again
//     and its endpoint updated if it changed (a VPS that moved);
//   - silent for failover_after: the next hub in the site file's order
//     becomes active (a live one first);
//   - a hub earlier in the order than the active one is probed (its peer
//     removed and added again, which starts a handshake at once) until it
//     answers; then it becomes active again.
//
// A change of the home line's public address: the hub learns the gate's
// new address from its next authenticated packet (WireGuard roaming). Told
// of the change (WANChanged, which the vpn daemon calls when the box
// announces a new WAN address), the tunnel sends that packet to the active
// hub at once instead of waiting up to a keepalive interval (standby hubs
// learn it from their next keepalive).
package wgtunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"gate/config"
)

var timeZero time.Time

// Options configure a Tunnel.
type Options struct {
	VPN        *config.VPN
	PrivateKey wgtypes.Key
	// Backend is BackendAuto (default), BackendKernel or BackendUserspace.
	Backend string
	Log     *slog.Logger
	// Metrics receives the tunnel's status (nil: not exported).
	Metrics *Metrics
	// Resolve looks a hub's name up (nil: the system resolver, IPv4 first).
	Resolve func(ctx context.Context, host string) (netip.Addr, error)
	// Tick is how often the status is read (0: 1s).
	Tick time.Duration
}

// Tunnel is the running interface and its hubs.
type Tunnel struct {
	opt     Options
	vpn     *config.VPN
	log     *slog.Logger
	b       backend
	reason  string
	hubs    []*hub
	active  int
	since   time.Time // when active became active
	lastKA  time.Time // last data probe sent
	routing bool
	addrs   []netip.Prefix // the gate's tunnel addresses
	wan     chan struct{}  // WANChanged's signal to Run
	nudged  time.Time      // when Run last acted on it
}

// hub is one hub's state.
type hub struct {
	cfg        config.Hub
	key        wgtypes.Key
	host       string
	port       uint16
	endpoint   netip.AddrPort
	resolvedAt time.Time
	resolveErr string
	heard      time.Time // last handshake or received bytes
	handshake  time.Time
	rx, tx     int64
	up         bool
	probedAt   time.Time
	demotedAt  time.Time
}

// New creates the interface, configures every hub and makes the first one
// active. Close it.
func New(ctx context.Context, opt Options) (*Tunnel, error) {
	v := opt.VPN
	if v == nil || len(v.Hubs) == 0 {
		return nil, errors.New("wgtunnel: no hub in the vpn section")
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Tick <= 0 {
		opt.Tick = time.Second
	}
	if opt.Resolve == nil {
		opt.Resolve = resolveSystem
	}
	t := &Tunnel{opt: opt, vpn: v, log: opt.Log, wan: make(chan struct{}, 1)}
	for _, h := range v.Hubs {
		host, portStr, err := net.SplitHostPort(h.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("hub %s: endpoint %q: %v", h.Name, h.Endpoint, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("hub %s: endpoint %q: port %q: %v", h.Name, h.Endpoint, portStr, err)
		}
		t.hubs = append(t.hubs, &hub{cfg: h, key: wgtypes.Key(h.PublicKey), host: host, port: uint16(port)})
	}
	b, reason, err := openBackend(opt.Backend, v.Interface, v.Hubs[0].MTU, t.log)
	if err != nil {
		return nil, err
	}
	t.b, t.reason = b, reason
	t.log.Info("tunnel interface", "interface", v.Interface, "backend", b.Name(), "reason", reason)
	if m := opt.Metrics; m != nil {
		m.backend.WithLabelValues(b.Name()).Set(1)
	}
	if err := t.setup(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Backend says which WireGuard implementation runs the interface.
func (t *Tunnel) Backend() string { return t.b.Name() }

// Active is the name of the active hub.
func (t *Tunnel) Active() string { return t.hubs[t.active].cfg.Name }

// gateAddrs are the gate's tunnel addresses: every hub's, IPv4 and (for a
// hub with a public IPv6 address) IPv6, once each.
func (t *Tunnel) gateAddrs() []netip.Prefix {
	var addrs []netip.Prefix
	for _, h := range t.hubs {
		for _, a := range []netip.Prefix{h.cfg.GateAddress, h.cfg.GateAddress6()} {
			if a.IsValid() && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

func (t *Tunnel) setup(ctx context.Context) error {
	// Every hub's gate address stays on the interface, so that listeners
	// bound to it survive a failover; only the active hub is routed.
	addrs := t.gateAddrs()
	routeLAN := false
	for _, h := range t.hubs {
		routeLAN = routeLAN || h.cfg.RouteLAN
	}
	if err := setLink(t.vpn.Interface, t.hubs[0].cfg.MTU, addrs); err != nil {
		return err
	}
	t.addrs = addrs
	if err := enablePolicyRouting(t.vpn.Interface, addrs); err != nil {
		return err
	}
	now := time.Now()
	for _, h := range t.hubs {
		t.resolve(ctx, h, now)
	}
	t.active, t.since = 0, now
	key := t.opt.PrivateKey
	cfg := wgtypes.Config{PrivateKey: &key, ReplacePeers: true}
	if t.vpn.ListenPort != 0 {
		p := t.vpn.ListenPort
		cfg.ListenPort = &p
	}
	for i := range t.hubs {
		cfg.Peers = append(cfg.Peers, t.peerConfig(i))
	}
	if err := t.b.Configure(cfg); err != nil {
		return err
	}
	if routeLAN {
		if err := enableLANRouting(t.vpn.Interface); err != nil {
			return err
		}
		t.routing = true
		t.log.Info("LAN routing", "interface", t.vpn.Interface, "masquerade", true)
	}
	t.log.Info("active hub", "hub", t.Active(), "endpoint", t.hubs[0].endpoint.String(), "reason", "start")
	t.metricsActive()
	return nil
}

// peerConfig is hub i's full peer configuration.
func (t *Tunnel) peerConfig(i int) wgtypes.PeerConfig {
	h := t.hubs[i]
	ka := t.vpn.Keepalive.D()
	pc := wgtypes.PeerConfig{
		PublicKey:                   h.key,
		PersistentKeepaliveInterval: &ka,
		ReplaceAllowedIPs:           true,
	}
	if h.endpoint.IsValid() {
		pc.Endpoint = net.UDPAddrFromAddrPort(h.endpoint)
	}
	if i == t.active {
		// Any source: the hub forwards admins' connections unchanged
		// (see policy.go); what goes into the tunnel is decided by the
		// routes and rules.
		pc.AllowedIPs = []net.IPNet{{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, {IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
	}
	return pc
}

// Close removes the interface, the routing rules and the LAN routing.
func (t *Tunnel) Close() error {
	disablePolicyRouting(t.addrs)
	if t.routing {
		if err := disableLANRouting(); err != nil {
			t.log.Warn("removing LAN routing", "table", nftTable, "err", err)
		}
	}
	return t.b.Close()
}

// Run watches the hubs until ctx is done.
func (t *Tunnel) Run(ctx context.Context) error {
	tick := time.NewTicker(t.opt.Tick)
	defer tick.Stop()
	for {
		if err := t.step(ctx, time.Now()); err != nil {
			t.log.Warn("tunnel step", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-t.wan:
			// At most one a second: a NOTIFY is easy to send on the LAN.
			if time.Since(t.nudged) >= time.Second {
				t.nudged = time.Now()
				t.nudge()
			}
		}
	}
}

// WANChanged tells the tunnel that the home line's public address changed
// (safe from any goroutine): Run sends a packet through the tunnel to the
// active hub at once, from which it learns the gate's new address.
func (t *Tunnel) WANChanged() {
	select {
	case t.wan <- struct{}{}:
	default:
	}
}

// nudge sends the active hub a datagram through the tunnel now:
// WireGuard sends it (after a handshake if the session is old) from the
// box's new address, and the hub roams to it.
func (t *Tunnel) nudge() {
	t.log.Info("the box's WAN address changed: reaching the hub from it now", "hub", t.Active())
	t.probeData(t.hubs[t.active])
	t.lastKA = time.Now()
}

// step reads the status, updates the metrics and acts on what it sees.
func (t *Tunnel) step(ctx context.Context, now time.Time) error {
	peers, err := t.b.Peers()
	if err != nil {
		return err
	}
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	for _, p := range peers {
		byKey[p.PublicKey] = p
	}
	fail := t.vpn.FailAfter.D()
	for i, h := range t.hubs {
		p, ok := byKey[h.key]
		if !ok {
			continue
		}
		if p.ReceiveBytes > h.rx {
			h.heard = now
		}
		h.rx, h.tx = p.ReceiveBytes, p.TransmitBytes
		if hs := p.LastHandshakeTime; !hs.IsZero() && hs.After(h.handshake) {
			h.handshake = hs
			if hs.After(h.heard) {
				h.heard = hs
			}
		}
		up := !h.heard.IsZero() && now.Sub(h.heard) < fail
		if up != h.up {
			h.up = up
			if up {
				t.log.Info("hub up", "hub", h.cfg.Name, "endpoint", h.endpoint.String(), "handshake_age", age(now, h.handshake))
			} else {
				t.log.Warn("hub down", "hub", h.cfg.Name, "endpoint", h.endpoint.String(), "silent_for", age(now, h.heard), "active", i == t.active)
			}
		}
		t.metricsHub(now, h)
	}

	a := t.hubs[t.active]
	// Keep data flowing to the active hub: its answer proves it alive, its
	// silence makes WireGuard handshake again.
	if now.Sub(t.lastKA) >= t.vpn.Keepalive.D() {
		t.lastKA = now
		t.probeData(a)
	}
	// Stale: look the name up again.
	silent := now.Sub(later(a.heard, t.since))
	if silent >= fail/2 && now.Sub(a.resolvedAt) >= fail/2 {
		if t.resolve(ctx, a, now) {
			if err := t.b.Configure(wgtypes.Config{Peers: []wgtypes.PeerConfig{t.peerConfig(t.active)}}); err != nil {
				return err
			}
		}
	}

	next, reason := decide(now, t.active, t.since, t.views(), fail)
	if next != t.active {
		return t.switchTo(ctx, now, next, reason)
	}

	// Probe the hubs we would rather use, and resolve the unresolved.
	for i, h := range t.hubs {
		if i == t.active {
			continue
		}
		if !h.endpoint.IsValid() && now.Sub(h.resolvedAt) >= fail/2 {
			if t.resolve(ctx, h, now) {
				if err := t.b.Configure(wgtypes.Config{Peers: []wgtypes.PeerConfig{t.peerConfig(i)}}); err != nil {
					return err
				}
			}
		}
		if i < t.active && !h.up && now.Sub(h.probedAt) >= probeEvery(t.vpn) {
			h.probedAt = now
			if now.Sub(h.resolvedAt) >= fail {
				t.resolve(ctx, h, now)
			}
			if err := t.reAdd(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// probeEvery is how often a preferred hub that is down is probed.
func probeEvery(v *config.VPN) time.Duration {
	return max(v.FailAfter.D()/3, 2*v.Keepalive.D(), 5*time.Second)
}

// reAdd removes hub i's peer and adds it again: a fresh peer with a
// persistent keepalive starts a handshake at once.
func (t *Tunnel) reAdd(i int) error {
	h := t.hubs[i]
	if err := t.b.Configure(wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: h.key, Remove: true}}}); err != nil {
		return err
	}
	h.rx, h.tx = 0, 0
	return t.b.Configure(wgtypes.Config{Peers: []wgtypes.PeerConfig{t.peerConfig(i)}})
}

func (t *Tunnel) switchTo(ctx context.Context, now time.Time, next int, reason string) error {
	prev := t.active
	t.active, t.since = next, now
	t.hubs[prev].demotedAt = now
	t.hubs[prev].probedAt = now
	n := t.hubs[next]
	if now.Sub(n.resolvedAt) >= t.vpn.FailAfter.D()/2 {
		t.resolve(ctx, n, now)
	}
	// Old first: allowed IPs may not be on two peers at once.
	cfg := wgtypes.Config{Peers: []wgtypes.PeerConfig{t.peerConfig(prev), t.peerConfig(next)}}
	if err := t.b.Configure(cfg); err != nil {
		return err
	}
	if n.cfg.MTU != t.hubs[prev].cfg.MTU {
		if err := setLink(t.vpn.Interface, n.cfg.MTU, t.gateAddrs()); err != nil {
			return err
		}
	}
	t.lastKA = time.Time{}
	t.log.Warn("active hub", "hub", n.cfg.Name, "endpoint", n.endpoint.String(), "previous", t.hubs[prev].cfg.Name, "reason", reason)
	if m := t.opt.Metrics; m != nil {
		m.switches.WithLabelValues(t.hubs[prev].cfg.Name, n.cfg.Name).Inc()
	}
	t.metricsActive()
	return nil
}

// hubView is what decide needs to know of a hub.
type hubView struct {
	heard time.Time
}

func (t *Tunnel) views() []hubView {
	v := make([]hubView, len(t.hubs))
	for i, h := range t.hubs {
		v[i] = hubView{heard: h.heard}
	}
	return v
}

// decide picks the hub that should be active: the first hub before the
// active one that was heard within failAfter (it answers again), else the
// active one unless it has been silent for failAfter since it was heard
// or activated, else the next live hub after it in order, else simply the
// next one.
func decide(now time.Time, active int, since time.Time, hubs []hubView, failAfter time.Duration) (int, string) {
	alive := func(i int) bool {
		return !hubs[i].heard.IsZero() && now.Sub(hubs[i].heard) < failAfter
	}
	for i := 0; i < active; i++ {
		if alive(i) {
			return i, "preferred hub answers again"
		}
	}
	if now.Sub(later(hubs[active].heard, since)) < failAfter || len(hubs) == 1 {
		return active, ""
	}
	for k := 1; k < len(hubs); k++ {
		if i := (active + k) % len(hubs); alive(i) {
			return i, fmt.Sprintf("no answer for %s", failAfter)
		}
	}
	return (active + 1) % len(hubs), fmt.Sprintf("no answer for %s (no hub is known alive: trying the next)", failAfter)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String()
}

// probeData sends one datagram to the hub's tunnel address (the discard
// port) through the tunnel.
func (t *Tunnel) probeData(h *hub) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.cfg.HubAddress, 9)))
	if err != nil {
		return
	}
	c.Write([]byte{0})
	c.Close()
}

// resolve looks h's name up again; it reports whether the endpoint changed.
func (t *Tunnel) resolve(ctx context.Context, h *hub, now time.Time) bool {
	h.resolvedAt = now
	var a netip.Addr
	if ip, err := netip.ParseAddr(h.host); err == nil {
		a = ip
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		a, err = t.opt.Resolve(rctx, h.host)
		if err != nil {
			if err.Error() != h.resolveErr {
				h.resolveErr = err.Error()
				t.log.Warn("resolving hub", "hub", h.cfg.Name, "host", h.host, "err", err)
			}
			return false
		}
		h.resolveErr = ""
	}
	ep := netip.AddrPortFrom(a.Unmap(), h.port)
	if ep == h.endpoint {
		return false
	}
	if h.endpoint.IsValid() {
		t.log.Info("hub endpoint", "hub", h.cfg.Name, "endpoint", ep.String(), "previous", h.endpoint.String())
	}
	h.endpoint = ep
	if m := t.opt.Metrics; m != nil {
		m.endpoint.DeletePartialMatch(map[string]string{"hub": h.cfg.Name})
		m.endpoint.WithLabelValues(h.cfg.Name, ep.String()).Set(1)
	}
	return true
}

func resolveSystem(ctx context.Context, host string) (netip.Addr, error) {
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range as {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	if len(as) == 0 {
		return netip.Addr{}, fmt.Errorf("%s has no address", host)
	}
	return as[0], nil
}
