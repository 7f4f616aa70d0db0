package upsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"gate/internal/hostcmd"
	"gate/internal/powerplan"
	"gate/internal/wol"
)

// returnActions are the return plan's actions on the site
// (powerplan.ReturnActions).
type returnActions struct{ d *Daemon }

// Power implements powerplan.ReturnActions from the last reading.
func (r returnActions) Power() (bool, float64, bool) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snap.Vars == nil || time.Since(d.lastData) > StaleAfter {
		return false, 0, false
	}
	f := powerplan.Flags(d.snap.Vars["ups.status"])
	charge, err := strconv.ParseFloat(d.snap.Vars["battery.charge"], 64)
	if err != nil {
		charge = -1
	}
	return f["OL"] && !f["OB"], charge, true
}

// Up implements powerplan.ReturnActions: the host's NUT secondary is
// logged in again, or its SSH port accepts a connection.
func (r returnActions) Up(ctx context.Context, h powerplan.Host) bool {
	if h.NUTUser != "" && r.d.Server.Logins()[h.NUTUser] > 0 {
		return true
	}
	ch := r.d.host(h.Name)
	if ch == nil {
		return false
	}
	dl := net.Dialer{Timeout: time.Second}
	c, err := dl.DialContext(ctx, "tcp", net.JoinHostPort(ch.IP.String(), "22"))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Wake implements powerplan.ReturnActions: magic packets for each of the
// host's MACs to the LAN's broadcast address.
func (r returnActions) Wake(ctx context.Context, h powerplan.Host) error {
	ch := r.d.host(h.Name)
	if ch == nil {
		return fmt.Errorf("unknown host %s", h.Name)
	}
	bcast := wol.Broadcast(r.d.Cfg.LAN.Subnet)
	var errs []error
	for _, m := range ch.MACs {
		errs = append(errs, wol.Send(ctx, bcast, net.HardwareAddr(m)))
	}
	return errors.Join(errs...)
}

// Undo implements powerplan.ReturnActions: the undo of each pre-step, over
// the same SSH path as the step (the group's first host).
func (r returnActions) Undo(ctx context.Context, g powerplan.Group, step string) error {
	if len(g.Hosts) == 0 {
		return fmt.Errorf("group %s has no host", g.Name)
	}
	h := g.Hosts[0].Name
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd, err := hostcmd.Undo(step, h)
	if err != nil {
		return err
	}
	return r.d.ssh(ctx, h, cmd)
}
