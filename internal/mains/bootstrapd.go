package mains

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"gate/config"
	"gate/internal/bootstrap"
	"gate/internal/daemon"
	"gate/internal/hostcmd"
	"gate/internal/httpserve"
	"gate/internal/metrics"
	"gate/internal/pxe"
	"gate/internal/tftp"
)

// Bootstrapd runs the bootstrapd daemon, which re-images the site's hosts: proxyDHCP beside the ISP
// box (internal/pxe), TFTP for the iPXE binaries (internal/tftp), and the
// HTTP server for iPXE scripts, boot assets, the imager's job and
// cloud-init NoCloud data (internal/bootstrap).
func Bootstrapd() {
	assets := flag.String("assets", "/usr/share/gate", "boot assets: ipxe/{undionly.kpxe,ipxe.efi,snponly.efi}, imager/{vmlinuz,initramfs.gz}")
	images := flag.String("images", "", "directory served under /images/ (default: <state>/images)")
	addr := flag.String("addr", "", "the gate's LAN address (default: gate.address, else the interface address inside lan.subnet)")
	iface := flag.String("iface", "", "bind DHCP sockets to this interface (default: any)")
	daemon.Main("bootstrapd", daemon.MetricsBootstrapd, func(ctx context.Context, d *daemon.Daemon) error {
		if d.Config.Bootstrap == nil {
			return daemon.ErrDisabled
		}
		return runBootstrapd(ctx, d, *assets, *images, *addr, *iface)
	})
}

// lanAddr finds the gate's address: configured, static, or the first
// interface address inside the LAN, waiting for DHCP to give one.
func lanAddr(ctx context.Context, c *config.Config, flagAddr string) (netip.Addr, error) {
	if flagAddr != "" {
		return netip.ParseAddr(flagAddr)
	}
	if p, ok := c.GateAddr(); ok {
		return p.Addr(), nil
	}
	for {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && c.LAN.Subnet.Contains(ip.Unmap()) {
					return ip.Unmap(), nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// ifaceOf names the interface holding ip ("" if none).
func ifaceOf(ip netip.Addr) string {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == ip {
					return i.Name
				}
			}
		}
	}
	return ""
}

func runBootstrapd(ctx context.Context, d *daemon.Daemon, assets, images, flagAddr, iface string) error {
	c := d.Config
	b := c.Bootstrap
	gateIP, err := lanAddr(ctx, c, flagAddr)
	if err != nil {
		return fmt.Errorf("the gate's LAN address: %w", err)
	}
	token, err := c.ReadSecret(b.APIToken)
	if err != nil {
		return fmt.Errorf("bootstrap.api_token: %w", err)
	}
	store, err := bootstrap.OpenStore(d.StateDir, nil)
	if err != nil {
		return err
	}
	if images == "" {
		images = filepath.Join(d.StateDir, "images")
	}
	port := b.HTTPPort
	base := "http://" + net.JoinHostPort(gateIP.String(), strconv.Itoa(port))
	// The hosts' shutdown keys, read and parsed once here rather than at
	// every nocloud request (and an unreadable one said once).
	shutdownKeys := map[config.Secret]string{}
	for _, h := range c.Hosts {
		ref := h.Shutdown.SSHKey
		if _, done := shutdownKeys[ref]; done || ref == "" {
			continue
		}
		key, err := c.ReadSecret(ref)
		if err == nil {
			var pub ssh.PublicKey
			if pub, err = hostcmd.PublicKey(key); err == nil {
				shutdownKeys[ref] = hostcmd.AuthorizedKey(pub)
				continue
			}
		}
		shutdownKeys[ref] = ""
		d.Log.Warn("the hosts get no shutdown key: it is unreadable", "key", ref, "err", err)
	}
	srv := &bootstrap.Server{Config: c, Store: store, Base: base, GateIP: gateIP, Assets: assets, Images: images,
		Token: []byte(strings.TrimSpace(string(token))), Log: d.Log,
		// upsd's state directory is a sibling of ours (/perm/gate/upsd).
		PowerFile: filepath.Join(filepath.Dir(d.StateDir), "upsd", "power.json"),
		NUTPassword: func(user string) string {
			if c.UPS == nil {
				return ""
			}
			for _, u := range c.UPS.Users {
				if u.Name == user {
					pw, err := c.ReadSecret(u.Password)
					if err != nil {
						d.Log.Warn("NUT password unreadable", "user", user, "err", err)
						return ""
					}
					return strings.TrimSpace(string(pw))
				}
			}
			return ""
		},
		ShutdownKey: func(ref config.Secret) string { return shutdownKeys[ref] }}
	h, err := srv.Handler()
	if err != nil {
		return err
	}

	if iface == "" {
		// Bound to the LAN interface, broadcasts leave through it even
		// without a default route.
		iface = ifaceOf(gateIP)
	}
	ts := &tftp.Server{Root: filepath.Join(assets, "ipxe"), Log: d.Log}
	ps := &pxe.Server{Config: &pxe.Config{Server: gateIP.AsSlice(), HTTPBase: base, Known: srv.KnownMAC}, Interface: iface, Log: d.Log}
	if b.DHCP == "full" {
		dns := c.LAN.DNS
		if len(dns) == 0 && c.LAN.Gateway.IsValid() {
			dns = []netip.Addr{c.LAN.Gateway}
		}
		ps.Pool = &pxe.Pool{Subnet: c.LAN.Subnet, Start: b.PoolStart, End: b.PoolEnd, Router: c.LAN.Gateway, DNS: dns, Lease: time.Hour,
			Static: func(mac net.HardwareAddr) (netip.Addr, bool) {
				for _, h := range c.Hosts {
					for _, m := range h.MACs {
						if net.HardwareAddr(m).String() == mac.String() && h.IP.IsValid() {
							return h.IP, true
						}
					}
				}
				return netip.Addr{}, false
			}}
	}
	d.Registry.MustRegister(
		metrics.NewCounterFunc(metrics.Opts{Name: "gate_bootstrap_tftp_transfers_total", Help: "TFTP transfers finished."}, func() float64 { return float64(ts.Transfers.Load()) }),
		metrics.NewCounterFunc(metrics.Opts{Name: "gate_bootstrap_tftp_failures_total", Help: "TFTP transfers failed."}, func() float64 { return float64(ts.Failures.Load()) }),
		metrics.NewCounterFunc(metrics.Opts{Name: "gate_bootstrap_tftp_polled_waits_total", Help: "Waits for a fast TFTP client's ACK that polled before sleeping."}, func() float64 {
			n, _ := ts.PolledWaits()
			return float64(n)
		}),
		metrics.NewCounterFunc(metrics.Opts{Name: "gate_bootstrap_pxe_answers_total", Help: "PXE requests answered."}, func() float64 { return float64(ps.Answered.Load()) }),
		metrics.NewCounterFunc(metrics.Opts{Name: "gate_bootstrap_pxe_ignored_total", Help: "DHCP requests ignored."}, func() float64 { return float64(ps.Ignored.Load()) }),
		metrics.NewGaugeFunc(metrics.Opts{Name: "gate_bootstrap_hosts_flagged", Help: "Hosts flagged for re-imaging."}, func() float64 {
			n := 0
			for _, s := range store.All() {
				if s.Phase != bootstrap.PhaseIdle {
					n++
				}
			}
			return float64(n)
		}),
	)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)

	hl, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := httpserve.Serve(ctx, hl, h, httpserve.Options{Log: d.Log}); err != nil {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	tc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gateIP.AsSlice(), Port: 69})
	if err != nil {
		tc, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 69})
	}
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	go func() { errc <- ts.Serve(ctx, tc) }()
	dhcpReady := make(chan struct{})
	go func() { errc <- ps.Run(ctx, func() { close(dhcpReady) }) }()
	select {
	case <-dhcpReady:
	case err := <-errc:
		cancel()
		<-httpDone
		return err
	}
	d.Ready("addr", gateIP.String(), "http", base, "dhcp", b.DHCP, "hosts", len(c.Hosts))
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	<-httpDone
	return err
}
