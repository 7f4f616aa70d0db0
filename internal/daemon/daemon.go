// Package daemon is what every daemon of the gate shares: the flags
// (-config, -secrets, -state, -metrics), loading the site file, a slog
// logger on stdout, the Prometheus /metrics endpoint, the readiness line
// and a context cancelled on SIGTERM or SIGINT.
//
// A daemon's main is:
//
//	func main() {
//		daemon.Main("upsd", ":9103", func(ctx context.Context, d *daemon.Daemon) error {
//			... wire packages, then d.Ready(...) once serving ...
//			<-ctx.Done()
//			return nil
//		})
//	}
//
// Conventions the image and the tests rely on:
//   - the readiness line is `msg=ready daemon=NAME` (slog text format);
//   - a daemon whose section is absent from the site file logs why and
//     exits with status 125, which tells gokrazy not to restart it;
//   - a clean stop on SIGTERM exits 0.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"gate/config"
	"gate/internal/console"
	"gate/internal/firewall/table"
	"gate/internal/httpserve"
	"gate/internal/metrics"
)

// Paths on the gate.
const (
	SiteFile   = "/etc/gate/site.yaml"
	SecretsDir = "/perm/gate/secrets"
	StateRoot  = "/perm/gate"
)

// Metrics ports of the daemons, so the image and the tests agree.
const (
	MetricsVPN        = ":9101"
	MetricsDynDNS     = ":9102"
	MetricsUPSD       = ":9103"
	MetricsBootstrapd = ":9104"
	MetricsBastion    = ":9105"
	MetricsClock      = ":9106"
	MetricsStatusd    = ":9107"
	MetricsTailnet    = ":9108"
)

// MetricsAddrs lists every daemon's metrics address (the firewall opens
// them together).
func MetricsAddrs() []string {
	return []string{MetricsVPN, MetricsDynDNS, MetricsUPSD, MetricsBootstrapd, MetricsBastion, MetricsClock, MetricsStatusd, MetricsTailnet}
}

// ExitDisabled is the exit status for "nothing to do": gokrazy's
// supervisor does not restart a program that exits with it.
const ExitDisabled = 125

// ErrDisabled is returned by a run function when the site file has no
// section for the daemon.
var ErrDisabled = errors.New("section absent from the site file")

// ErrDone is returned by a run function whose work is done for this boot
// (the firewall, once its policy is in the kernel): the program exits with
// ExitDisabled and its memory is free.
var ErrDone = errors.New("done: nothing left to do until the next boot")

// Daemon is what a run function gets.
type Daemon struct {
	Name     string
	Config   *config.Config
	Log      *slog.Logger
	Registry *metrics.Registry
	// StateDir is the daemon's own directory on /perm (created).
	StateDir string
	// MetricsAddr is the address /metrics listens on (after Main started it).
	MetricsAddr string
	// Mux serves /metrics; a daemon may add its own debug pages.
	Mux *http.ServeMux
}

// Ready logs the readiness line.
func (d *Daemon) Ready(attrs ...any) {
	d.Log.Info("ready", attrs...) // the logger carries daemon=NAME
}

// RunFunc runs a daemon until ctx is done.
type RunFunc func(ctx context.Context, d *Daemon) error

// Main parses the flags (define the daemon's own with the flag package
// before calling it), loads the site file, serves /metrics and calls run.
// It never returns.
func Main(name, metricsAddr string, run RunFunc) {
	cfgPath := flag.String("config", SiteFile, "the site file")
	secrets := flag.String("secrets", SecretsDir, "the secrets directory")
	state := flag.String("state", filepath.Join(StateRoot, name), "the daemon's state directory (on /perm)")
	metricsFlag := flag.String("metrics", metricsAddr, "address of the Prometheus /metrics endpoint (empty: off)")
	fwWait := flag.Duration("firewall-wait", 0, "wait this long at most for the firewall's policy (internal/firewall) before listening (0: do not wait; the image sets it when the site has the firewall)")
	logConsole := flag.Bool("console", false, "also log to /dev/console (on the gate: gokrazy keeps only a ring buffer)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(console.Output(os.Stdout, *logConsole), &slog.HandlerOptions{Level: slog.LevelInfo}))
	code := run1(log, name, *cfgPath, *secrets, *state, *metricsFlag, *fwWait, run)
	os.Exit(code)
}

func run1(log *slog.Logger, name, cfgPath, secrets, state, metricsAddr string, fwWait time.Duration, run RunFunc) int {
	log = log.With("daemon", name)
	cfg, err := config.LoadWithSecrets(cfgPath, secrets)
	if err != nil {
		log.Error("site file rejected", "file", cfgPath, "err", err)
		return 1
	}
	// site.timezone: the daemons' local time (log lines); the zone
	// database is compiled in (the gate's root has none), and the site
	// file's validation has already loaded it.
	if loc, err := time.LoadLocation(cfg.Site.Timezone); err == nil {
		time.Local = loc
	}
	if n, err := RaiseFileLimit(FileLimit); err != nil {
		log.Warn("open-file limit not raised", "limit", n, "err", err)
	}
	log.Debug("memory limit", "bytes", setMemoryLimit(name), "gogc", setGCPercent())
	if err := os.MkdirAll(state, 0o700); err != nil {
		log.Error("state directory", "dir", state, "err", err)
		return 1
	}
	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.GoCollector(), metrics.ProcessCollector(), newMemoryCollector(smapsRollup))
	d := &Daemon{Name: name, Config: cfg, Log: log, Registry: reg, StateDir: state, Mux: http.NewServeMux()}
	d.Mux.Handle("/metrics", reg.Handler())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if fwWait > 0 {
		waitFirewall(ctx, log, table.Present, fwWait, 50*time.Millisecond)
	}
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			log.Error("metrics listener", "addr", metricsAddr, "err", err)
			return 1
		}
		d.MetricsAddr = ln.Addr().String()
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			if err := httpserve.Serve(mctx, ln, d.Mux, httpserve.Options{Log: log}); err != nil {
				log.Error("metrics server", "addr", d.MetricsAddr, "err", err)
			}
			close(done)
		}()
		defer func() { stop(); <-done }()
	}
	err = run(ctx, d)
	switch {
	case errors.Is(err, ErrDisabled):
		log.Info("not started", "reason", err.Error())
		return ExitDisabled
	case errors.Is(err, ErrDone):
		log.Info("exiting", "reason", err.Error())
		return ExitDisabled
	case err != nil && ctx.Err() == nil:
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped", "reason", fmt.Sprint(context.Cause(ctx)))
	return 0
}
