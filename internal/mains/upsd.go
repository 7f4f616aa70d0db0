package mains

import (
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gate/internal/daemon"
	"gate/internal/hostkeys"
	"gate/internal/poweroff"
	"gate/internal/powerplan"
	"gate/internal/upsd"

	"golang.org/x/sys/unix"
)

// UPSD runs the upsd daemon, which watches the UPS, serves it over NUT to the site's hosts and,
// when the UPS is critical, shuts the site down in order (see
// internal/upsd and internal/powerplan).
func UPSD() {
	marker := flag.String("poweroff-marker", "", "for tests: write this file instead of powering the gate off")
	daemon.Main("upsd", daemon.MetricsUPSD, func(ctx context.Context, d *daemon.Daemon) error {
		return runUPSD(ctx, d, *marker)
	})
}

func runUPSD(ctx context.Context, d *daemon.Daemon, marker string) error {
	c := d.Config
	if c.UPS == nil {
		return daemon.ErrDisabled
	}
	u, err := upsd.New(c, d.Log, d.Registry, filepath.Join(d.StateDir, "plan.journal"))
	if err != nil {
		return err
	}
	u.Off = gateOff(d, marker)
	u.HostKeys = &hostkeys.Store{Path: filepath.Join(d.StateDir, "known_hosts")}
	st, info, err := u.Plan.Check()
	switch {
	case err != nil:
		d.Log.Error("plan journal", "err", err)
	case st == powerplan.Finished:
		d.Log.Info("a finished shutdown plan's journal was archived; it is not acted on again", "archive", info)
	}
	// A listener that fails (address gone, descriptors exhausted) is
	// logged and opened again: it never stops the watch or the plan.
	for _, a := range c.UPS.Listen {
		go serveNUT(ctx, d, u, a)
	}
	if st == powerplan.Unfinished {
		d.Log.Warn("resuming the unfinished shutdown plan", "reason", info)
		u.Resume(ctx, info)
	}
	go u.Poll(ctx, c.UPS.PollInterval.D())
	if u.Return != nil && st != powerplan.Unfinished {
		rst, rinfo, err := u.Return.State()
		switch {
		case err != nil:
			d.Log.Error("return plan journal", "err", err)
		case st == powerplan.Finished:
			u.ReturnAfter(ctx, info) // the way back from the outage just archived
		case rst == powerplan.Unfinished:
			d.Log.Warn("resuming the unfinished return plan", "outage", rinfo)
			u.ReturnAfter(ctx, rinfo)
		case rst == powerplan.Finished:
			d.Log.Info("a finished return plan's journal was archived", "archive", rinfo)
		}
	}
	select { // ready once the UPS has been read (or tried)
	case <-u.Polled():
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
		return nil
	}
	d.Ready("ups", c.UPS.Name, "source", c.UPS.Source, "listen", strings.Join(c.UPS.Listen, ","), "groups", len(u.Plan.Groups))
	<-ctx.Done()
	u.Wait(5 * time.Second)
	return nil
}

// serveNUT serves NUT on addr until ctx is done, listening again (after a
// pause growing to a minute) whenever listening or serving fails.
func serveNUT(ctx context.Context, d *daemon.Daemon, u *upsd.Daemon, addr string) {
	pause := time.Second
	for ctx.Err() == nil {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			pause = time.Second
			err = u.Server.Serve(ctx, ln)
		}
		if ctx.Err() != nil {
			return
		}
		d.Log.Error("NUT listener failed; upsd goes on watching the UPS", "addr", addr, "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Minute)
	}
}

// gateOff is the plan's last step: the gate's power-off (a marker file for
// tests), or nothing with ups.power_off_gate: false.
func gateOff(d *daemon.Daemon, marker string) func() error {
	if !*d.Config.UPS.PowerOffGate {
		return func() error {
			d.Log.Warn("plan finished; the gate stays up (ups.power_off_gate: false)")
			return nil
		}
	}
	if marker != "" {
		return func() error {
			d.Log.Warn("power-off (test marker)", "file", marker)
			return os.WriteFile(marker, []byte(time.Now().Format(time.RFC3339Nano)+"\n"), 0o644)
		}
	}
	return func() error { return orderlyPowerOff(d) }
}

// orderlyPowerOff powers the gate off through gokrazy's init, so that
// every service is stopped and /perm unmounted first (internal/poweroff);
// if gokrazy refuses, or has not powered off two minutes later (this
// process is normally stopped long before), the kernel directly.
func orderlyPowerOff(d *daemon.Daemon) error {
	// What is written so far reaches the card whatever happens next
	// (gokrazy powers off without a sync when /perm cannot be unmounted).
	unix.Sync()
	// The request outlives this call: gokrazy answers it once every
	// service has stopped, this one included.
	if err := (&poweroff.Gokrazy{}).Request(context.Background()); err != nil {
		d.Log.Error("orderly power-off refused: powering off directly (/perm not unmounted)", "err", err)
		return upsd.SystemPowerOff()
	}
	d.Log.Info("power-off: gokrazy stops every service, unmounts /perm and powers off")
	time.AfterFunc(2*time.Minute, func() { upsd.SystemPowerOff() })
	return nil
}
