package tailnet

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"gate/internal/bastion"
	"gate/internal/daemon"
	"gate/internal/httpserve"
	"gate/internal/metrics"
)

// metricsPorts are the other daemons' /metrics, relayed on the tailnet
// on the same ports.
var metricsPorts = []string{daemon.MetricsVPN, daemon.MetricsDynDNS, daemon.MetricsUPSD, daemon.MetricsBootstrapd, daemon.MetricsBastion, daemon.MetricsClock, daemon.MetricsStatusd}

// Main is the tailnet daemon's main: its flags, then Run under
// internal/daemon (site file, /metrics on 9108, SIGTERM).
func Main() {
	var o Options
	flag.StringVar(&o.NUT, "nut", "", "the NUT server relayed read-only (default: the first ups.listen address, on loopback if it is a wildcard)")
	flag.BoolVar(&o.Debug, "debug", false, "log tsnet's own (verbose) messages")
	daemon.Main("tailnet", daemon.MetricsTailnet, func(ctx context.Context, d *daemon.Daemon) error {
		return Run(ctx, d, o)
	})
}

// Options are the daemon's flags.
type Options struct {
	// NUT is the NUT server relayed read-only (default: the first
	// ups.listen address, on loopback if it is a wildcard).
	NUT string
	// Debug logs tsnet's own (verbose) messages.
	Debug bool
}

// Run is the tailnet daemon (cmd/tailnet): it joins the tailnet the site
// file names, with its state in d.StateDir/tsnet, and serves the offered
// services on the node's tailnet addresses until ctx is done: the bastion
// on bastion.port (its own audit log in d.StateDir), NUT read-only on
// 3493, the daemons' /metrics on their ports (this one's on 9108).
func Run(ctx context.Context, d *daemon.Daemon, o Options) error {
	nutAddr, debug := o.NUT, o.Debug
	c := d.Config
	t := c.Tailnet
	if t == nil {
		return daemon.ErrDisabled
	}
	key, err := c.ReadSecret(t.AuthKey)
	if err != nil {
		return fmt.Errorf("auth_key: %w", err)
	}
	var routes []netip.Prefix
	if t.AdvertiseLAN {
		routes = []netip.Prefix{c.LAN.Subnet}
	}
	cfg := Config{
		Dir: filepath.Join(d.StateDir, "tsnet"), ControlURL: t.ControlURL, AuthKey: strings.TrimSpace(string(key)),
		Hostname: t.Hostname, Tags: t.Tags, Routes: routes, Log: d.Log,
	}
	if debug {
		cfg.Debug = func(f string, a ...any) { d.Log.Debug("tsnet: " + fmt.Sprintf(f, a...)) }
	}
	node := New(cfg)
	defer node.Close()
	up := metrics.NewGauge(metrics.Opts{Name: "gate_tailnet_up", Help: "1 once the gate is up on the tailnet."})
	refused := metrics.NewCounterVec(metrics.Opts{Name: "gate_tailnet_nut_refused_total", Help: "NUT commands refused (read-only on the tailnet), by command."}, []string{"command"})
	d.Registry.MustRegister(up, refused)

	type service struct {
		name  string
		port  int
		serve func(net.Listener) error
	}
	var services []service
	if t.Offers("bastion") {
		srv, _, audit, err := bastion.FromSite(c, d.StateDir, d.Log, d.Registry, node.Identify)
		if err != nil {
			return err
		}
		defer audit.Close()
		services = append(services, service{"bastion", c.Bastion.Port, func(ln net.Listener) error { return srv.Serve(ctx, ln) }})
	}
	if t.Offers("nut") {
		if nutAddr == "" {
			nutAddr = localAddr(c.UPS.Listen[0])
		}
		p := &NUTReadOnly{Upstream: nutAddr, Log: d.Log, Refused: func(cmd string) { refused.WithLabelValues(cmd).Inc() }}
		services = append(services, service{"nut", 3493, func(ln net.Listener) error { return p.Serve(ctx, ln) }})
	}
	if t.Offers("status") {
		// statusd lets loopback in; its password still applies.
		services = append(services, service{"status", port(c.Status.Listen), func(ln net.Listener) error {
			return Forward(ctx, ln, localAddr(c.Status.Listen))
		}})
	}
	if t.Offers("metrics") {
		services = append(services, service{"metrics", port(daemon.MetricsTailnet), func(ln net.Listener) error {
			return httpserve.Serve(ctx, ln, d.Mux, httpserve.Options{Log: d.Log})
		}})
		for _, m := range metricsPorts {
			services = append(services, service{"metrics", port(m), func(ln net.Listener) error {
				return Forward(ctx, ln, localAddr(m))
			}})
		}
	}

	ips, nodeKey, err := node.Up(ctx)
	if err != nil {
		return err
	}
	up.Set(1)
	errc := make(chan error, len(services))
	var offered []string
	for _, s := range services {
		ln, err := node.Listen(s.port)
		if err != nil {
			return err
		}
		go func() { errc <- s.serve(ln) }()
		offered = append(offered, s.name+":"+strconv.Itoa(s.port))
	}
	d.Ready("tailnet_ips", fmt.Sprint(ips), "node_key", nodeKey, "hostname", t.Hostname, "control", t.ControlURL, "services", strings.Join(offered, ","), "routes", fmt.Sprint(routes))
	for range services {
		if err := <-errc; err != nil && ctx.Err() == nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// localAddr turns a listen address into one to dial on the gate itself:
// a wildcard host becomes loopback.
func localAddr(listen string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if a, err := netip.ParseAddr(h); h == "" || (err == nil && a.IsUnspecified()) {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p)
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
