package mains

import (
	"context"
	"net/netip"
	"path/filepath"
	"time"

	"gate/internal/daemon"
	"gate/internal/dyndns"
	"gate/internal/publicip"
)

// DynDNS runs the dyndns daemon, which keeps the site's DNS records on the box's public address
// (see internal/dyndns and internal/publicip).
func DynDNS() {
	wait := waitClock()
	daemon.Main("dyndns", daemon.MetricsDynDNS, func(ctx context.Context, d *daemon.Daemon) error {
		return runDynDNS(ctx, d, *wait)
	})
}

func runDynDNS(ctx context.Context, d *daemon.Daemon, wait time.Duration) error {
	c := d.Config
	if c.DynDNS == nil {
		return daemon.ErrDisabled
	}
	prov, recs, srcs, hash, err := dyndns.FromConfig(c)
	if err != nil {
		return err
	}
	u := &dyndns.Updater{
		Provider: prov, Records: recs, Sources: srcs, Agree: c.DynDNS.Agree, Timeout: c.DynDNS.Timeout.D(),
		Interval: c.DynDNS.Interval.D(), StatePath: filepath.Join(d.StateDir, "state.json"), ConfigHash: hash,
		VerifyInterval: c.DynDNS.VerifyInterval.D(), MaxInterval: c.DynDNS.MaxInterval.D(),
		Reload: func() (dyndns.Provider, string, error) {
			p, _, _, h, err := dyndns.FromConfig(c)
			return p, h, err
		},
		Log: d.Log, Metrics: dyndns.NewMetrics(d.Registry),
	}
	// The box announces a new WAN address: check at once.
	wake := make(chan struct{}, 1)
	u.Wake = wake
	box := &publicip.BoxEvents{Log: d.Log}
	go box.Run(ctx, func(netip.Addr) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	u.Load()
	// TLS checks certificates' dates, TSIG signs the time (a server
	// refuses more than 5 minutes off): a clock in 1970 fails both.
	awaitClock(ctx, d, wait, "TLS certificates and TSIG signatures are checked against the time")
	d.Ready("provider", prov.Name(), "records", len(recs), "sources", len(srcs), "interval", c.DynDNS.Interval.D())
	u.Run(ctx)
	return nil
}
