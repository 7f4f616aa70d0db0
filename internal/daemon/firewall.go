package daemon

import (
	"context"
	"log/slog"
	"time"
)

// waitFirewall waits until applied reports the gate's firewall policy in
// place, asking every interval, for at most max: gokrazy starts every
// program at once, and a daemon listening before the policy is set would
// be reachable from wherever the network lets a packet in (an IPv6
// address of the LAN is often reachable from the internet) for that
// moment. It never waits longer than max, so that a failing firewall does
// not keep upsd from watching the UPS: it then says so and returns false.
func waitFirewall(ctx context.Context, log *slog.Logger, applied func() (bool, error), max, interval time.Duration) bool {
	start := time.Now()
	var lastErr error
	for {
		ok, err := applied()
		if ok {
			if w := time.Since(start); w >= interval {
				log.Info("the firewall's policy is in place", "waited", w.Round(time.Millisecond))
			}
			return true
		}
		if err != nil {
			lastErr = err
		}
		if time.Since(start) >= max {
			log.Warn("the firewall's policy is not in place: starting without it", "waited", max, "err", lastErr)
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}
