// Package tailnet makes the gate a node of a tailnet (Tailscale, or a
// self-hosted Headscale) with tailscale.com/tsnet, beside the WireGuard
// hubs: a userspace node (no TUN device, no routes on the gate) whose
// listeners serve what the site file offers on the tailnet: the bastion
// (internal/bastion), NUT read-only (NUTReadOnly) and the daemons'
// metrics (Forward).
//
// The node's state (its node key, prefs and the control server's
// answers) lives in Config.Dir on /perm, so the gate stays the same node
// across reboots and updates and needs its auth key only the first time.
// Nothing is uploaded to Tailscale's log service.
package tailnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"tailscale.com/envknob"
	"tailscale.com/ipn"
	"tailscale.com/logtail"
	"tailscale.com/tsnet"
)

// Config is what a Node needs.
type Config struct {
	Dir        string // state directory (0700, on /perm)
	ControlURL string
	AuthKey    string // may be empty once the node is logged in
	Hostname   string
	Tags       []string
	// Routes are advertised as subnet routes (the control server must
	// approve them). tsnet drops what arrives for them unless a handler
	// takes it: the node relays TCP connections to their destination from
	// the gate's own stack (UDP and ICMP are not forwarded).
	Routes []netip.Prefix
	Log    *slog.Logger
	// Debug receives tsnet's own (verbose) logs; nil drops them.
	Debug func(format string, args ...any)
}

// Node is the gate on the tailnet.
type Node struct {
	cfg Config
	srv *tsnet.Server
}

// New returns a node; Up joins the tailnet.
func New(cfg Config) *Node {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// The gate's logs stay on the gate.
	logtail.Disable()
	envknob.SetNoLogsNoSupport()
	srv := &tsnet.Server{
		Dir:           cfg.Dir,
		ControlURL:    cfg.ControlURL,
		AuthKey:       cfg.AuthKey,
		Hostname:      cfg.Hostname,
		AdvertiseTags: cfg.Tags,
		Logf:          cfg.Debug,
		UserLogf: func(format string, args ...any) {
			// tsnet's messages for a person: the login URL above all.
			cfg.Log.Info("tsnet", "msg", fmt.Sprintf(format, args...))
		},
	}
	return &Node{cfg: cfg, srv: srv}
}

// Up starts the node and waits until it runs on the tailnet, logging the
// login URL when the control server wants an interactive login (no or an
// expired auth key), and returning the control server's refusal (a bad
// key) as an error. It returns the node's tailnet addresses and its node
// key (public, short form).
func (n *Node) Up(ctx context.Context) ([]netip.Addr, string, error) {
	lc, err := n.srv.LocalClient() // starts the node
	if err != nil {
		return nil, "", fmt.Errorf("tailnet: starting the node in %s: %w", n.cfg.Dir, err)
	}
	w, err := lc.WatchIPNBus(ctx, ipn.NotifyInitialState)
	if err != nil {
		return nil, "", fmt.Errorf("tailnet: %w", err)
	}
	defer w.Close()
	lastURL := ""
	for {
		nt, err := w.Next()
		if err != nil {
			return nil, "", fmt.Errorf("tailnet: waiting for %s: %w", n.cfg.ControlURL, err)
		}
		if nt.ErrMessage != nil {
			return nil, "", fmt.Errorf("tailnet: %s refused the node: %s (check tailnet.auth_key)", n.cfg.ControlURL, *nt.ErrMessage)
		}
		if u := nt.BrowseToURL; u != nil && *u != "" && *u != lastURL {
			lastURL = *u
			n.cfg.Log.Warn("tailnet login needed: open this URL, or give the gate an auth key (tailnet.auth_key)", "url", *u)
		}
		if nt.State == nil {
			continue
		}
		n.cfg.Log.Info("tailnet state", "state", nt.State.String(), "control", n.cfg.ControlURL)
		if *nt.State != ipn.Running {
			continue
		}
		st, err := lc.Status(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("tailnet: %w", err)
		}
		if len(st.TailscaleIPs) == 0 {
			return nil, "", errors.New("tailnet: running, but the control server gave no address")
		}
		if len(n.cfg.Routes) > 0 {
			n.srv.RegisterFallbackTCPHandler(n.routeTCP)
			if _, err := lc.EditPrefs(ctx, &ipn.MaskedPrefs{AdvertiseRoutesSet: true, Prefs: ipn.Prefs{AdvertiseRoutes: n.cfg.Routes}}); err != nil {
				return nil, "", fmt.Errorf("tailnet: advertising %v: %w", n.cfg.Routes, err)
			}
		}
		return st.TailscaleIPs, st.Self.PublicKey.ShortString(), nil
	}
}

// routeTCP takes a TCP flow to an address of the advertised routes and
// relays it from the gate (the LAN host sees the gate's address).
func (n *Node) routeTCP(src, dst netip.AddrPort) (func(net.Conn), bool) {
	for _, r := range n.cfg.Routes {
		if r.Contains(dst.Addr()) {
			return func(c net.Conn) {
				peer := n.Identify(src.String())
				if err := relay(context.Background(), c, dst.String()); err != nil {
					n.cfg.Log.Info("routed connection failed", "peer", peer, "source", src.String(), "destination", dst.String(), "err", err)
					return
				}
				n.cfg.Log.Info("routed connection", "peer", peer, "source", src.String(), "destination", dst.String())
			}, true
		}
	}
	return nil, false
}

// Listen listens on port of the node's tailnet addresses.
func (n *Node) Listen(port int) (net.Listener, error) {
	ln, err := n.srv.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("tailnet: listening on port %d: %w", port, err)
	}
	return ln, nil
}

// Identify names the tailnet peer at source (ip:port): its user's login
// (or its tags, for a tagged node) and its node name; "" if the tailnet
// does not know it.
func (n *Node) Identify(source string) string {
	lc, err := n.srv.LocalClient()
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	who, err := lc.WhoIs(ctx, source)
	if err != nil || who.Node == nil {
		return ""
	}
	name := who.Node.ComputedName
	if name == "" {
		name = strings.TrimSuffix(who.Node.Name, ".")
	}
	owner := ""
	switch {
	case len(who.Node.Tags) > 0:
		owner = strings.Join(who.Node.Tags, ",")
	case who.UserProfile != nil:
		owner = who.UserProfile.LoginName
	}
	return owner + " on " + name
}

// Close leaves the tailnet (the node stays registered: its key is in Dir).
func (n *Node) Close() error { return n.srv.Close() }
