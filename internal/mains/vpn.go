package mains

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"gate/internal/daemon"
	"gate/internal/publicip"
	"gate/internal/wgtunnel"
)

// VPN runs the vpn daemon, which keeps the gate's WireGuard tunnel to the site's VPS hubs up:
// kernel WireGuard when the kernel has it, WireGuard in this process on a
// TUN otherwise (-backend forces one), failover between the hubs and the
// status on /metrics. See internal/wgtunnel.
func VPN() {
	backend := flag.String("backend", wgtunnel.BackendAuto, "WireGuard implementation: auto (kernel when available), kernel or userspace")
	wait := waitClock()
	daemon.Main("vpn", daemon.MetricsVPN, func(ctx context.Context, d *daemon.Daemon) error {
		v := d.Config.VPN
		if v == nil {
			return daemon.ErrDisabled
		}
		raw, err := d.Config.ReadSecret(v.PrivateKey)
		if err != nil {
			return fmt.Errorf("vpn.private_key: %w", err)
		}
		key, err := wgtypes.ParseKey(string(raw))
		if err != nil {
			return fmt.Errorf("vpn.private_key %s: malformed WireGuard private key (44 base64 characters, as `wg genkey` prints)", v.PrivateKey)
		}
		// A handshake carries the time: the hub ignores one older than
		// the last it saw from this gate (WireGuard's replay protection),
		// which a Pi back in 1970 after a power cut would send.
		awaitClock(ctx, d, *wait, "WireGuard handshakes carry the time; the hub ignores one older than the last it saw")
		t, err := wgtunnel.New(ctx, wgtunnel.Options{
			VPN:        v,
			PrivateKey: key,
			Backend:    *backend,
			Log:        d.Log,
			Metrics:    wgtunnel.NewMetrics(d.Registry),
		})
		if err != nil {
			return err
		}
		defer t.Close()
		// The box announces a new WAN address: the hub must learn it now.
		box := &publicip.BoxEvents{Log: d.Log, Poll: 10 * time.Second}
		go box.Run(ctx, func(netip.Addr) { t.WANChanged() })
		d.Ready("backend", t.Backend(), "interface", v.Interface, "hub", t.Active())
		return t.Run(ctx)
	})
}
