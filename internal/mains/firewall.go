package mains

import (
	"context"

	"gate/internal/daemon"
	"gate/internal/firewall"
)

// Firewall sets the gate's input policy at boot (internal/firewall) and
// stays, so that gokrazy does not run it again; the policy outlives it.
// firewall.off removes the policy and exits for good.
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
	<-ctx.Done()
	return nil
}
