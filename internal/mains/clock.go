package mains

import (
	"context"
	"flag"
	"path/filepath"
	"time"

	"gate/internal/clock"
	"gate/internal/daemon"
	"gate/internal/ntp"
)

// Clock runs the clock daemon, which keeps the gate's time: the floor at
// start (the time saved on /perm, or -floor, the image's source date),
// then NTP from time.servers, the time saved now and then, and the
// kernel's synchronised flag that the vpn and dyndns wait for (see
// internal/clock). It sets the machine's clock: run it on the gate only.
func Clock() {
	floor := flag.String("floor", "", "RFC 3339 time the clock never starts before (the image's source date)")
	daemon.Main("clock", daemon.MetricsClock, func(ctx context.Context, d *daemon.Daemon) error {
		var f time.Time
		if *floor != "" {
			var err error
			if f, err = time.Parse(time.RFC3339, *floor); err != nil {
				d.Log.Warn("-floor ignored", "floor", *floor, "err", err)
			}
		}
		s := &clock.Service{
			Servers: d.Config.Time.Servers, Floor: f, StatePath: filepath.Join(d.StateDir, "time"),
			System: clock.Kernel{}, Log: d.Log, Metrics: clock.NewMetrics(d.Registry), Query: ntp.Query,
		}
		floor := s.Start()
		d.Ready("servers", len(s.Servers), "floor", floor.UTC().Format(time.RFC3339))
		return s.Run(ctx)
	})
}

// waitClock is the -wait-clock flag of the daemons that need a
// synchronised clock (the image sets it from time.wait; 0, the default
// elsewhere, does not wait: a test machine's clock is its own business).
func waitClock() *time.Duration {
	return flag.Duration("wait-clock", 0, "at start, wait this long at most for a synchronised clock (the gate: time.wait)")
}

// awaitClock waits for the clock as -wait-clock says.
func awaitClock(ctx context.Context, d *daemon.Daemon, max time.Duration, why string) {
	if max > 0 {
		clock.Wait(ctx, d.Log, max, why, clock.Synced)
	}
}
