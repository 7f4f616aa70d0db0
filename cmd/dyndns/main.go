// Command dyndns is a placeholder daemon until its issue lands: it follows the
// daemon conventions (flags, readiness line, /metrics, SIGTERM) and does
// nothing else.
package main

import (
	"context"

	"gate/internal/daemon"
)

func main() {
	daemon.Main("dyndns", daemon.MetricsDynDNS, func(ctx context.Context, d *daemon.Daemon) error {
		if d.Config.DynDNS == nil {
			return daemon.ErrDisabled
		}
		d.Ready("placeholder", true)
		<-ctx.Done()
		return nil
	})
}
