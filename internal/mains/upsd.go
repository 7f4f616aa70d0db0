package mains

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gate/internal/daemon"
	"gate/internal/powerplan"
	"gate/internal/upsd"
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
	u.Off = upsd.SystemPowerOff
	if marker != "" {
		u.Off = func() error {
			d.Log.Warn("power-off (test marker)", "file", marker)
			return os.WriteFile(marker, []byte(time.Now().Format(time.RFC3339Nano)+"\n"), 0o644)
		}
	}
	st, info, err := u.Plan.Check()
	switch {
	case err != nil:
		d.Log.Error("plan journal", "err", err)
	case st == powerplan.Finished:
		d.Log.Info("a finished shutdown plan's journal was archived; it is not acted on again", "archive", info)
	}
	errc := make(chan error, len(c.UPS.Listen))
	for _, a := range c.UPS.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("NUT listener %s: %w", a, err)
		}
		go func() { errc <- u.Server.Serve(ctx, ln) }()
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
	select {
	case <-ctx.Done():
		u.Wait(5 * time.Second)
		return nil
	case err := <-errc:
		return err
	}
}
