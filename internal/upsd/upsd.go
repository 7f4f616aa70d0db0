// Package upsd is the UPS daemon's wiring: it reads the UPS (a Source:
// another upsd over NUT, or the UPS on the gate's USB), serves it over NUT to
// the site's secondaries, decides with powerplan when the UPS is critical
// and runs the ordered plan.
//
// Secondaries are shown FSD group by group: a host's upsmon sees "FSD"
// only when its shutdown group's turn comes, and until then the UPS's LB
// flag (and an FSD the source itself reports) is masked from it (the gate
// decides; a secondary that saw OB+LB would otherwise shut itself down
// after HOSTSYNC, out of order).
//
// Faults: while the UPS is (last known) on battery or a plan runs, the
// secondaries keep being served the last data read, never DATA-STALE:
// upsmon would otherwise declare the UPS dead after its DEADTIME and shut
// every host down at once. The gate's own deadtime decides instead. An
// FSD sent by a NUT client (a primary or admin user) starts the ordered
// plan; it is not shown to every secondary at once. Once a plan is over
// and the gate is still up (mains came back, or the power-off failed),
// FSD is cleared as soon as the UPS is on line again, so secondaries that
// boot later are not shut down again.
//
// Metrics (on the daemon's -metrics address): gate_ups_plan_phase{phase}
// (idle, group <name>, ups-off, poweroff, over), gate_ups_host_state
// {host,state} (up, shutting-down, logged-out, down, timeout: one is 1).
// gate_ups_return_phase{phase} (idle, waiting for power, group <name>,
// done). The same states go to power.json beside the journal
// (internal/powerstate), which bootstrapd reads for `gate hosts`. The
// journals' format is documented in internal/powerplan.
package upsd

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"gate/config"
	"gate/internal/hostcmd"
	"gate/internal/hostkeys"
	"gate/internal/hostprobe"
	"gate/internal/metrics"
	"gate/internal/nut"
	"gate/internal/powerplan"
	"gate/internal/powerstate"
)

// Daemon is the running UPS daemon.
type Daemon struct {
	Cfg    *config.Config
	Log    *slog.Logger
	Server *nut.Server
	Plan   *powerplan.Plan
	// Return is the way back after an outage; nil when ups.return is
	// disabled.
	Return *powerplan.Return
	Watch  *powerplan.Watch
	// Off powers the gate off (SystemPowerOff on the gate).
	Off func() error
	// Source is the UPS (New sets it from the site file).
	Source Source
	// HostKeys pins the servers' SSH host keys for the ssh steps (nil: in
	// a temporary file, for the life of the process).
	HostKeys *hostkeys.Store

	// Probe probes a host on the LAN (hostprobe by default).
	Probe func(ctx context.Context, ip netip.Addr) bool
	// Power is the hosts' power state and the plans' progress, written
	// to power.json beside the journal (internal/powerstate).
	Power *powerstate.Writer

	mu        sync.Mutex
	snap      nut.Snapshot
	lastData  time.Time
	onBattery bool            // the last known state was OB
	planOver  bool            // a plan ran in this process and returned
	fsd       chan string     // FSD requests from NUT clients (the user)
	started   map[string]bool // groups shown FSD
	born      time.Time       // when New ran: secondaries reconnect after it
	seen      map[string]bool // users logged in at some time since born
	polled    chan struct{}   // closed after the first read of the source
	plans     sync.WaitGroup
	running   bool
	userGroup map[string]string
	// returning cancels a running return plan (nil when none runs).
	returning context.CancelFunc
	returns   sync.WaitGroup

	metrics *upsMetrics
}

type upsMetrics struct {
	charge, runtime, onBattery *metrics.Gauge
	load                       *metrics.Gauge
	logins                     *metrics.GaugeVec
	flags                      *metrics.GaugeVec
	phase                      *metrics.GaugeVec
	hostState                  *metrics.GaugeVec
	returnPhase                *metrics.GaugeVec
}

// hostStates are the values of gate_ups_host_state's state label.
var hostStates = []string{"up", "shutting-down", "logged-out", "down", "timeout", "powering-on", "missing"}

// New wires a daemon from the site file.
func New(c *config.Config, log *slog.Logger, reg *metrics.Registry, journal string) (*Daemon, error) {
	u := c.UPS
	d := &Daemon{Cfg: c, Log: log, started: map[string]bool{}, userGroup: map[string]string{}, born: time.Now(), seen: map[string]bool{}, polled: make(chan struct{}), fsd: make(chan string, 1)}
	prober := &hostprobe.Prober{}
	d.Probe = prober.Answers
	d.Power = &powerstate.Writer{Path: filepath.Join(filepath.Dir(journal), "power.json")}
	users := map[string]nut.User{}
	for _, nu := range u.Users {
		pw, err := c.ReadSecret(nu.Password)
		if err != nil {
			return nil, fmt.Errorf("ups.users %s: %w", nu.Name, err)
		}
		users[nu.Name] = nut.User{Password: string(pw), Primary: nu.Role != "secondary", Admin: nu.Role == "admin",
			Actions: nu.Actions, Instcmds: nu.Instcmds}
	}
	var groups []powerplan.Group
	for _, g := range u.Groups {
		pg := powerplan.Group{Name: g.Name, Timeout: g.Timeout.D(), PreSteps: g.PreSteps}
		for _, h := range c.Hosts {
			if h.Shutdown.Group != g.Name {
				continue
			}
			pg.Hosts = append(pg.Hosts, powerplan.Host{Name: h.Name, NUTUser: h.Shutdown.NUTUser, SSH: h.Shutdown.Method == "ssh", Wake: h.Shutdown.Wake == "wol"})
			if h.Shutdown.Method == "nut" {
				d.userGroup[h.Shutdown.NUTUser] = g.Name
			}
		}
		groups = append(groups, pg)
	}
	if u.Source == "usb" {
		d.Source = &USBSource{}
	} else {
		src, err := NewNUTSource(c)
		if err != nil {
			return nil, err
		}
		d.Source = src
	}
	d.Server = &nut.Server{UPS: u.Name, Desc: u.Description, Users: users, Data: d.data, Status: d.status, Log: log,
		Set: func(name, value string) error {
			return d.act(func(ctx context.Context) error { return d.Source.SetVar(ctx, name, value) })
		},
		Exec: func(cmd, param string) error {
			return d.act(func(ctx context.Context) error { return d.Source.InstCmd(ctx, cmd, param) })
		},
		OnFSD: func(user string) error {
			select {
			case d.fsd <- user:
			default: // one is pending already
			}
			return nil
		},
	}
	d.Watch = &powerplan.Watch{P: powerplan.Policy{TrustLB: *u.TrustLowBatt, Charge: u.Thresholds.Charge, Runtime: u.Thresholds.Runtime.D(), OnBattery: u.Thresholds.OnBattery.D(), Deadtime: u.Deadtime.D()}}
	d.metrics = &upsMetrics{
		charge:      metrics.NewGauge(metrics.Opts{Name: "gate_ups_battery_charge_percent", Help: "Battery charge."}),
		runtime:     metrics.NewGauge(metrics.Opts{Name: "gate_ups_battery_runtime_seconds", Help: "Remaining runtime."}),
		onBattery:   metrics.NewGauge(metrics.Opts{Name: "gate_ups_on_battery_seconds", Help: "Seconds on battery (0 on line power)."}),
		load:        metrics.NewGauge(metrics.Opts{Name: "gate_ups_load_percent", Help: "Output load (ups.load)."}),
		logins:      metrics.NewGaugeVec(metrics.Opts{Name: "gate_ups_client_logins", Help: "NUT logins of each host's account (its upsmon connected: 1 or more)."}, []string{"user"}),
		flags:       metrics.NewGaugeVec(metrics.Opts{Name: "gate_ups_status", Help: "ups.status flags (1 when set)."}, []string{"flag"}),
		phase:       metrics.NewGaugeVec(metrics.Opts{Name: "gate_ups_plan_phase", Help: "The shutdown plan's current phase (1)."}, []string{"phase"}),
		hostState:   metrics.NewGaugeVec(metrics.Opts{Name: "gate_ups_host_state", Help: "Each site host's power state as the plans know it (1 for the current state)."}, []string{"host", "state"}),
		returnPhase: metrics.NewGaugeVec(metrics.Opts{Name: "gate_ups_return_phase", Help: "The return plan's current phase (1)."}, []string{"phase"}),
	}
	if reg != nil {
		reg.MustRegister(d.metrics.charge, d.metrics.runtime, d.metrics.onBattery, d.metrics.load, d.metrics.logins, d.metrics.flags, d.metrics.phase, d.metrics.hostState, d.metrics.returnPhase)
	}
	d.setReturnPhase("idle")
	d.setPhase("idle")
	d.metrics.load.Set(math.NaN()) // until the UPS reports ups.load
	for _, h := range c.Hosts {
		d.setHostState(h.Name, "up")
	}
	d.Plan = &powerplan.Plan{Groups: groups, Journal: journal, Do: d, Log: log, Phase: d.setPhase, HostState: d.setHostState}
	if r := u.Return; *r.Enable {
		d.Return = &powerplan.Return{Groups: groups, Journal: filepath.Join(filepath.Dir(journal), "return.journal"), Do: returnActions{d}, Log: log,
			MinCharge: *r.MinCharge, WakeAfter: r.WakeAfter.D(), WakeTries: r.WakeTries, Phase: d.setReturnPhase, HostState: d.setHostState}
	}
	return d, nil
}

func (d *Daemon) setReturnPhase(p string) {
	d.metrics.returnPhase.Reset()
	d.metrics.returnPhase.WithLabelValues(p).Set(1)
	d.writePower(d.Power.Return(p))
}

func (d *Daemon) setPhase(p string) {
	d.metrics.phase.Reset()
	d.metrics.phase.WithLabelValues(p).Set(1)
	d.writePower(d.Power.Plan(p))
}

func (d *Daemon) writePower(err error) {
	if err != nil {
		d.Log.Error("writing the power state file", "err", err)
	}
}

func (d *Daemon) setHostState(host, state string) {
	d.writePower(d.Power.Host(host, state))
	for _, s := range hostStates {
		v := 0.0
		if s == state {
			v = 1
		}
		d.metrics.hostState.WithLabelValues(host, s).Set(v)
	}
}

// StaleAfter is how old the data may be before clients get DATA-STALE
// (as NUT's upsd), except on battery or during a plan (see the package
// documentation).
const StaleAfter = 15 * time.Second

func (d *Daemon) data() nut.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.snap
	if s.Vars != nil && time.Since(d.lastData) > StaleAfter && !d.onBattery && !d.running {
		s.Stale = true
	}
	return s
}

// status is what a client logged in as user sees as ups.status.
func (d *Daemon) status(user, st string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	any := len(d.started) > 0
	g, known := d.userGroup[user]
	fsd := (known && d.started[g]) || (!known && any)
	var kept []string
	for _, f := range strings.Fields(st) {
		// The source's FSD is the plan's to show; LB is masked from a
		// secondary until its group's turn.
		if f != "FSD" && (f != "LB" || fsd || !known) {
			kept = append(kept, f)
		}
	}
	st = strings.Join(kept, " ")
	if fsd {
		st = strings.TrimSpace("FSD " + st)
	}
	return st
}

// StartGroup implements powerplan.Actions.
func (d *Daemon) StartGroup(g string) {
	d.mu.Lock()
	d.started[g] = true
	d.mu.Unlock()
	d.Log.Warn("FSD shown to the group's secondaries", "group", g)
}

// Answers implements powerplan.Actions: it probes the host's LAN address.
func (d *Daemon) Answers(ctx context.Context, h powerplan.Host) bool {
	if ch := d.host(h.Name); ch != nil {
		return d.Probe(ctx, ch.IP)
	}
	return false
}

// host is the site file's host called name, or nil.
func (d *Daemon) host(name string) *config.Host {
	for i := range d.Cfg.Hosts {
		if d.Cfg.Hosts[i].Name == name {
			return &d.Cfg.Hosts[i]
		}
	}
	return nil
}

// ReconnectGrace is how long after upsd starts a secondary that has not
// logged in yet counts as not yet reconnected rather than down: upsmon
// retries at every POLLFREQ (default 5 s). It matters when a plan resumes
// at start.
const ReconnectGrace = 15 * time.Second

// LoggedIn implements powerplan.Actions.
func (d *Daemon) LoggedIn(user string) bool {
	n := d.Server.Logins()[user]
	d.mu.Lock()
	defer d.mu.Unlock()
	if n > 0 {
		d.seen[user] = true
		return true
	}
	return !d.seen[user] && time.Since(d.born) < ReconnectGrace
}

// noteLogins remembers who has logged in since start.
func (d *Daemon) noteLogins() {
	logins := d.Server.Logins()
	d.mu.Lock()
	defer d.mu.Unlock()
	for u, n := range logins {
		if n > 0 {
			d.seen[u] = true
		}
	}
	for u := range d.userGroup {
		d.metrics.logins.WithLabelValues(u).Set(float64(logins[u]))
	}
}

// PreStep implements powerplan.Actions: k3s-drain and ceph-noout run on
// the group's first host over SSH.
func (d *Daemon) PreStep(ctx context.Context, g powerplan.Group, step string) error {
	if len(g.Hosts) == 0 {
		return fmt.Errorf("group %s has no host", g.Name)
	}
	h := g.Hosts[0].Name
	cmd, err := hostcmd.Step(step, h)
	if err != nil {
		return err
	}
	return d.ssh(ctx, h, cmd)
}

// SSHShutdown implements powerplan.Actions.
func (d *Daemon) SSHShutdown(ctx context.Context, h powerplan.Host) error {
	if ch := d.host(h.Name); ch != nil {
		return d.ssh(ctx, h.Name, ch.Shutdown.Command)
	}
	return fmt.Errorf("unknown host %s", h.Name)
}

// ssh runs cmd on a site host with its shutdown key.
func (d *Daemon) ssh(ctx context.Context, host, cmd string) error {
	h := d.host(host)
	if h == nil {
		return fmt.Errorf("unknown host %s", host)
	}
	ref := h.Shutdown.SSHKey
	if ref == "" {
		ref = "file:shutdown_ed25519_key"
	}
	key, err := d.Cfg.ReadSecret(ref)
	if err != nil {
		return fmt.Errorf("no SSH key for %s: %w", host, err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return fmt.Errorf("SSH key for %s: %v", host, err)
	}
	dl := net.Dialer{Timeout: 10 * time.Second}
	nc, err := dl.DialContext(ctx, "tcp", net.JoinHostPort(h.IP.String(), "22"))
	if err != nil {
		return err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// The host's key: the site file's, else pinned at first use.
	if d.HostKeys == nil {
		d.HostKeys = &hostkeys.Store{Path: filepath.Join(os.TempDir(), fmt.Sprintf("gate-upsd-%d-known_hosts", os.Getpid()))}
	}
	cc, chans, reqs, err := ssh.NewClientConn(nc, net.JoinHostPort(h.IP.String(), "22"), &ssh.ClientConfig{User: h.Shutdown.SSHUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: d.HostKeys.Callback(h.Shutdown.HostKey.PublicKey)})
	if err != nil {
		return err
	}
	c := ssh.NewClient(cc, chans, reqs)
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return fmt.Errorf("%q on %s: %v: %.200s", cmd, host, err, out)
	}
	return nil
}

// UPSOff implements powerplan.Actions: set the delays, then
// shutdown.return.
func (d *Daemon) UPSOff(ctx context.Context) error {
	u := d.Cfg.UPS
	if err := d.Source.SetVar(ctx, "ups.delay.shutdown", strconv.Itoa(int(u.Delays.Shutdown.D().Seconds()))); err != nil {
		d.Log.Warn("setting ups.delay.shutdown", "err", err)
	}
	if err := d.Source.SetVar(ctx, "ups.delay.start", strconv.Itoa(int(u.Delays.Start.D().Seconds()))); err != nil {
		d.Log.Warn("setting ups.delay.start", "err", err)
	}
	return d.Source.InstCmd(ctx, "shutdown.return", "")
}

// act runs a SET or INSTCMD a NUT client asked for on the source.
func (d *Daemon) act(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f(ctx)
}

// PowerOff implements powerplan.Actions.
func (d *Daemon) PowerOff() error { return d.Off() }

// Poll reads the source every interval and decides; it returns when ctx
// is done (or after the plan, which ends in the gate's power-off).
func (d *Daemon) Poll(ctx context.Context, interval time.Duration) {
	u := d.Cfg.UPS
	defer d.Source.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	powerBack, sawOB, first := false, false, true
	for {
		r, err := d.Source.Read(ctx)
		d.noteLogins()
		now := time.Now()
		var crit bool
		var why string
		if err != nil {
			// Once per kind of failure, not at every poll.
			if err.Error() != lastErr {
				d.Log.Warn("reading the UPS source", "source", u.Source, "err", err)
				lastErr = err.Error()
			}
			crit, why = d.Watch.Lost(now)
		} else {
			if lastErr != "" {
				d.Log.Info("the UPS source answers again", "source", u.Source)
				lastErr = ""
			}
			d.mu.Lock()
			d.snap = nut.Snapshot{Vars: r.Vars, Writable: r.Writable, Commands: r.Commands, Types: r.Types, Descs: r.Descs, Enums: r.Enums, Ranges: r.Ranges}
			d.lastData = now
			running := d.running
			d.mu.Unlock()
			d.observe(r.Vars)
			crit, why = d.Watch.Observe(now, r.Vars)
			if !crit && !powerplan.Flags(r.Vars["ups.status"])["OB"] {
				d.planEnded(ctx)
			}
			f := powerplan.Flags(r.Vars["ups.status"])
			sawOB = sawOB || f["OB"]
			if running && sawOB && f["OL"] && !powerBack { // not for a plan an FSD began on line power
				// Documented: a plan once begun completes; the UPS's
				// shutdown.return brings the site back.
				d.Log.Warn("mains power is back during the shutdown plan: the plan completes, then the UPS cuts and restores its output and the site boots again")
				powerBack = true
			}
		}
		ob, since := d.Watch.OnBattery()
		d.mu.Lock()
		d.onBattery = ob
		d.mu.Unlock()
		if ob {
			d.metrics.onBattery.Set(now.Sub(since).Seconds())
		} else {
			d.metrics.onBattery.Set(0)
		}
		if first {
			close(d.polled)
			first = false
		}
		if crit {
			d.runPlan(ctx, why)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case user := <-d.fsd:
			d.Log.Warn("FSD from a NUT client: the ordered shutdown plan runs", "user", user)
			d.runPlan(ctx, "FSD set by NUT client "+user)
		}
	}
}

// planEnded clears what a plan that is over left behind, once the UPS is
// on line power again and not critical: FSD for every group (secondaries
// that boot later must not be shut down again), the journal (archived),
// so the next outage runs a plan of its own.
func (d *Daemon) planEnded(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.planOver {
		return
	}
	arch, err := d.Plan.Archive()
	if err != nil {
		d.Log.Error("archiving the finished plan's journal", "err", err)
		return
	}
	d.started = map[string]bool{}
	d.running, d.planOver = false, false
	d.setPhase("idle")
	d.Log.Warn("the UPS is on line power after the shutdown plan: FSD cleared for the secondaries", "archive", arch)
	d.startReturn(ctx, filepath.Base(arch))
}

// Polled is closed once Poll has read the source the first time (whether
// it answered or not): clients connecting after it get data at once.
func (d *Daemon) Polled() <-chan struct{} { return d.polled }

// Resume runs an unfinished plan found in the journal.
func (d *Daemon) Resume(ctx context.Context, reason string) { d.runPlan(ctx, reason) }

// runPlan starts the plan unless it runs already; a running return plan
// is stopped and abandoned first (a new cut during the way back).
func (d *Daemon) runPlan(ctx context.Context, reason string) {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return
	}
	d.running = true
	stop := d.returning
	d.returning = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
		d.returns.Wait()
		d.Return.Abandon("a new cut: " + reason)
	}
	d.plans.Add(1)
	go func() {
		defer d.plans.Done()
		err := d.Plan.Run(ctx, reason)
		if err != nil {
			d.Log.Error("shutdown plan", "err", err)
		}
		if ctx.Err() == nil { // over, and the gate still up
			d.mu.Lock()
			d.planOver = true
			d.mu.Unlock()
			d.setPhase("over")
		}
	}()
}

// startReturn runs the return plan for outage (or resumes its journal);
// d.mu is held.
func (d *Daemon) startReturn(ctx context.Context, outage string) {
	if d.Return == nil || d.returning != nil {
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	d.returning = cancel
	d.returns.Add(1)
	go func() {
		defer d.returns.Done()
		if err := d.Return.Run(rctx, outage); err != nil {
			d.Log.Warn("return plan", "err", err)
		}
		d.mu.Lock()
		if d.returning != nil && rctx.Err() == nil {
			d.returning = nil
		}
		d.mu.Unlock()
	}()
}

// ReturnAfter runs the return plan at start-up: for the outage whose
// finished shutdown journal was archived as archive, or to resume an
// unfinished return journal ("" archive).
func (d *Daemon) ReturnAfter(ctx context.Context, archive string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startReturn(ctx, filepath.Base(archive))
}

// Wait waits for a running plan to return after its context ended (it
// journals where it stopped), at most timeout.
func (d *Daemon) Wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { d.plans.Wait(); d.returns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		d.Log.Warn("the shutdown plan did not stop in time", "waited", timeout)
	}
}

func (d *Daemon) observe(vars map[string]string) {
	if v, err := strconv.ParseFloat(vars["battery.charge"], 64); err == nil {
		d.metrics.charge.Set(v)
	}
	if v, err := strconv.ParseFloat(vars["battery.runtime"], 64); err == nil {
		d.metrics.runtime.Set(v)
	}
	if v, err := strconv.ParseFloat(vars["ups.load"], 64); err == nil {
		d.metrics.load.Set(v)
	}
	d.metrics.flags.Reset()
	for f := range powerplan.Flags(vars["ups.status"]) {
		d.metrics.flags.WithLabelValues(f).Set(1)
	}
}

// SystemPowerOff is the gate's own power-off: sync, then the kernel.
func SystemPowerOff() error {
	return powerOffSyscall()
}
