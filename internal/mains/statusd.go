package mains

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"gate/internal/alert"
	"gate/internal/daemon"
	"gate/internal/history"
	"gate/internal/status"
)

// Statusd runs the statusd daemon: the site's status page and JSON, and
// the alerts (see internal/status, internal/alert, internal/history).
func Statusd() {
	scrape := flag.String("scrape", "", "daemon=URL,... overrides of the daemons' /metrics URLs (default: the gate's loopback ports)")
	perm := flag.String("perm", "/perm", "the mount whose usage the page shows")
	daemon.Main("statusd", daemon.MetricsStatusd, func(ctx context.Context, d *daemon.Daemon) error {
		return runStatusd(ctx, d, *scrape, *perm)
	})
}

func runStatusd(ctx context.Context, d *daemon.Daemon, scrape, perm string) error {
	c := d.Config
	if c.Status == nil && c.Alerts == nil {
		return daemon.ErrDisabled
	}
	eps := map[string]string{}
	for k, v := range status.DefaultEndpoints {
		eps[k] = v
	}
	for _, kv := range strings.Split(scrape, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			eps[k] = v
		} else if kv != "" {
			return fmt.Errorf("-scrape %q: want daemon=URL", kv)
		}
	}
	// The other daemons' state directories are the siblings of ours.
	root := filepath.Dir(d.StateDir)
	svc := &status.Service{
		Gatherer:    &status.Gatherer{Config: c, Endpoints: eps, StateRoot: root, Perm: perm, Build: buildString()},
		Watcher:     &status.Watcher{Path: filepath.Join(d.StateDir, "watch.json"), Config: c},
		History:     history.New(status.SeriesNames, history.DefaultTiers...),
		HistoryPath: filepath.Join(d.StateDir, "history"),
		Interval:    10 * time.Second,
		SaveEvery:   10 * time.Minute,
		Log:         d.Log,
	}
	if err := svc.History.Load(svc.HistoryPath); err != nil {
		d.Log.Warn("history not restored; starting empty", "err", err)
	}
	if a := c.Alerts; a != nil {
		svc.Watcher.TunnelDownAfter, svc.Watcher.HostBackAfter = a.TunnelDownAfter.D(), a.HostBackAfter.D()
		var chans []alert.Channel
		if a.Webhook != nil {
			chans = append(chans, &alert.Webhook{URL: a.Webhook.URL})
		}
		if e := a.Email; e != nil {
			var pw []byte
			if e.User != "" {
				var err error
				if pw, err = c.ReadSecret(e.Password); err != nil {
					return fmt.Errorf("alerts.email.password: %w", err)
				}
			}
			chans = append(chans, &alert.SMTP{Server: e.Server, TLS: e.TLS, From: e.From, To: e.To, User: e.User, Password: string(pw), Hello: c.Gate.Hostname})
		}
		al, err := alert.New(alert.Options{Site: c.Site.Name, Channels: chans, Dir: d.StateDir, QueueMax: a.Queue,
			Limit: a.Limit, Window: a.Window.D(), MaxRetry: a.RetryMax.D(), Log: d.Log, Registry: d.Registry})
		if err != nil {
			return err
		}
		svc.Alerter = al
	}
	var srv *http.Server
	if s := c.Status; s != nil {
		svc.Interval = s.Interval.D()
		pw, err := c.ReadSecret(c.Gate.Password)
		if err != nil {
			return fmt.Errorf("gate.password (the page's password): %w", err)
		}
		svc.Server = &status.Server{Password: string(pw), Allow: s.Allow, History: svc.History, Log: d.Log}
		ln, err := net.Listen("tcp", s.Listen)
		if err != nil {
			return fmt.Errorf("status.listen %s: %w", s.Listen, err)
		}
		srv = &http.Server{Handler: svc.Server, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
		go srv.Serve(ln)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
	} else {
		svc.Server = &status.Server{History: svc.History, Log: d.Log} // gathered, not served
	}
	svc.Step(ctx)
	listen := ""
	if c.Status != nil {
		listen = c.Status.Listen
	}
	d.Ready("listen", listen, "alerts", svc.Alerter != nil, "interval", svc.Interval)
	svc.Run(ctx)
	return nil
}

// buildString is the module version and VCS revision the binary was built
// from.
func buildString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	s := bi.Main.Version
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			s += " " + kv.Value[:min(12, len(kv.Value))]
		case "vcs.time":
			s += " " + kv.Value
		}
	}
	return strings.TrimSpace(s)
}
