package mains

import (
	"context"

	"gate/internal/daemon"
	"gate/internal/firewall"
)

// Firewall sets the gate's input policy at boot (internal/firewall) and
// exits with status 125, so that gokrazy does not run it again: the policy
// outlives it, and a program kept running for nothing held some 17 MB.
// firewall.off removes the policy and exits the same way.
func Firewall() {
	daemon.Main("firewall", "", runFirewall)
}

func runFirewall(ctx context.Context, d *daemon.Daemon) error {
	c := d.Config
	if c.Firewall != nil && c.Firewall.Off {
		if err := firewall.Remove(); err != nil {
			d.Log.Warn("removing the policy", "err", err)
		}
		return daemon.ErrDisabled
	}
	p, err := firewall.FromConfig(c)
	if err != nil {
		return err
	}
	if err := firewall.Apply(p); err != nil {
		return err
	}
	d.Ready("table", "inet "+firewall.Table, "policy", p.String())
	return daemon.ErrDone
}
