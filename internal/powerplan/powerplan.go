// Package powerplan decides when the UPS is critical and runs the site's
// ordered shutdown: group by group (compute before ceph by default), each
// group's pre-steps, then its hosts (NUT secondaries are shown FSD when
// their group's turn comes; SSH hosts run their shutdown command), each
// group bounded by its timeout; then the UPS is told to cut its output
// and return with mains (shutdown.return), then the gate powers itself
// off.
//
// A host counts as down when it is: its NUT session gone (upsmon logs out
// as it starts its SHUTDOWNCMD, long before the machine is off) and then
// DownProbes probes in a row unanswered on the LAN (Actions.Answers). The
// next group starts only when every host of this one is down, or the
// group's timeout passed.
//
// Every step is appended to a journal on /perm: a restarted upsd resumes
// an unfinished plan where it was, and a journal whose plan finished (the
// gate powered off) is archived at the next start, never acted on again,
// so a leftover power-down never cuts the power at a later boot.
//
// The journal is JSON lines, one object per step, appended and fsynced:
//
//	{"step":"start","reason":"on battery and the UPS reports low battery","at":"2026-01-02T03:04:05.6Z"}
//	{"step":"host","group":"compute","host":"compute-1","outcome":"down","logged_out_s":1.2,"down_s":3.4,"at":...}
//	{"step":"group","group":"compute","at":...}
//	{"step":"ups-off","at":...}
//	{"step":"poweroff","at":...}
//
// "host" outcomes: down (logged out, then silent on the LAN), told (an
// SSH host whose command ran but which still answered at the timeout),
// timeout (still logged in, or still answering, at the group's timeout);
// logged_out_s and down_s are seconds since the group started (0: never).
// Archived journals are named <journal>.<start time, 20060102T150405Z>.
package powerplan

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Policy says when the UPS is critical.
type Policy struct {
	TrustLB   bool          // the UPS's own low-battery flag counts
	Charge    int           // percent; 0 disables
	Runtime   time.Duration // remaining runtime; 0 disables
	OnBattery time.Duration // time on battery; 0 disables
	Deadtime  time.Duration // on battery and no data this long
}

// Watch follows the UPS's state.
type Watch struct {
	P        Policy
	onBatt   bool
	obSince  time.Time
	lastData time.Time
}

// Flags splits ups.status into its words.
func Flags(status string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields(status) {
		m[f] = true
	}
	return m
}

// Observe takes fresh data; it reports whether the UPS is critical and why.
func (w *Watch) Observe(now time.Time, vars map[string]string) (bool, string) {
	w.lastData = now
	f := Flags(vars["ups.status"])
	switch {
	case f["OB"]:
		if !w.onBatt {
			w.onBatt, w.obSince = true, now
		}
	case f["OL"]:
		w.onBatt = false
	}
	if f["FSD"] {
		return true, "the UPS reports FSD"
	}
	if !w.onBatt {
		return false, ""
	}
	if f["LB"] && w.P.TrustLB {
		return true, "on battery and the UPS reports low battery"
	}
	if c, err := strconv.ParseFloat(vars["battery.charge"], 64); err == nil && w.P.Charge > 0 && c < float64(w.P.Charge) {
		return true, fmt.Sprintf("on battery, charge %.0f%% below %d%%", c, w.P.Charge)
	}
	if r, err := strconv.ParseFloat(vars["battery.runtime"], 64); err == nil && w.P.Runtime > 0 && time.Duration(r*float64(time.Second)) < w.P.Runtime {
		return true, fmt.Sprintf("on battery, runtime %.0fs below %s", r, w.P.Runtime)
	}
	if w.P.OnBattery > 0 && now.Sub(w.obSince) >= w.P.OnBattery {
		return true, fmt.Sprintf("on battery for %s", now.Sub(w.obSince).Round(time.Second))
	}
	return false, ""
}

// Lost is called when no data came; data lost while on line power is never
// critical, while on battery it is after Deadtime.
func (w *Watch) Lost(now time.Time) (bool, string) {
	if w.onBatt && !w.lastData.IsZero() && now.Sub(w.lastData) >= w.P.Deadtime {
		return true, fmt.Sprintf("on battery and no data for %s", now.Sub(w.lastData).Round(time.Second))
	}
	return false, ""
}

// OnBattery reports whether the last known state was on battery, and since when.
func (w *Watch) OnBattery() (bool, time.Time) { return w.onBatt, w.obSince }

// Host is a server to shut down.
type Host struct {
	Name    string
	NUTUser string // method nut
	SSH     bool   // method ssh
	Wake    bool   // the return plan may wake it (Wake-on-LAN)
}

// Group is one step of the plan.
type Group struct {
	Name     string
	Timeout  time.Duration
	PreSteps []string
	Hosts    []Host
}

// Actions are what the plan does to the world.
type Actions interface {
	// StartGroup shows FSD to the group's NUT secondaries.
	StartGroup(group string)
	// LoggedIn reports whether a NUT user still has a connection.
	LoggedIn(user string) bool
	// Answers probes the host once on the LAN: true when it answered.
	Answers(ctx context.Context, h Host) bool
	PreStep(ctx context.Context, g Group, step string) error
	SSHShutdown(ctx context.Context, h Host) error
	UPSOff(ctx context.Context) error
	PowerOff() error
}

// Plan is the ordered shutdown.
type Plan struct {
	Groups  []Group
	Journal string // path on /perm
	Do      Actions
	Log     *slog.Logger
	// Phase reports progress for metrics.
	Phase func(string)
	// HostState reports a host's state for metrics: shutting-down,
	// logged-out, down, timeout.
	HostState func(host, state string)
	// DownProbes unanswered probes in a row make a host down (default 3);
	// ProbeEvery spaces probes that were answered (default 250ms).
	DownProbes int
	ProbeEvery time.Duration
}

// entry is one journal line.
type entry struct {
	Step      string    `json:"step"` // start, host, group, ups-off, poweroff
	Group     string    `json:"group,omitempty"`
	Host      string    `json:"host,omitempty"`
	Outcome   string    `json:"outcome,omitempty"`
	Pre       string    `json:"pre,omitempty"`
	LoggedOut float64   `json:"logged_out_s,omitempty"`
	Down      float64   `json:"down_s,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

func readJournal(path string) ([]entry, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var es []entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			es = append(es, e)
		}
	}
	return es, sc.Err()
}

// State says what a journal holds at start-up.
type State int

// Journal states.
const (
	NoPlan     State = iota
	Unfinished       // resume it
	Finished         // archived, never acted on again
)

// Check reads the journal at start-up: an unfinished plan is reported for
// resuming; a finished one (the gate powered off) is archived.
func (p *Plan) Check() (State, string, error) {
	es, err := readJournal(p.Journal)
	if err != nil || len(es) == 0 {
		return NoPlan, "", err
	}
	for _, e := range es {
		if e.Step == "poweroff" {
			arch, err := p.archive(es)
			return Finished, arch, err
		}
	}
	return Unfinished, es[0].Reason, nil
}

// Archive moves a plan's journal aside once the plan is over and its
// gate stayed up (power came back, or the power-off failed): the next
// outage starts a plan of its own. It returns the archive's path ("" when
// there was no journal).
func (p *Plan) Archive() (string, error) {
	es, err := readJournal(p.Journal)
	if err != nil || len(es) == 0 {
		return "", err
	}
	return p.archive(es)
}

func (p *Plan) archive(es []entry) (string, error) {
	arch := p.Journal + "." + es[0].At.UTC().Format("20060102T150405Z")
	if err := os.Rename(p.Journal, arch); err != nil {
		return "", err
	}
	return arch, nil
}

func (p *Plan) record(e entry) {
	e.At = time.Now()
	b, _ := json.Marshal(e)
	f, err := os.OpenFile(p.Journal, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		p.Log.Error("journal", "err", err)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
	f.Sync()
}

func (p *Plan) phase(s string) {
	if p.Phase != nil {
		p.Phase(s)
	}
}

// Run executes the plan, skipping what the journal says is done.
func (p *Plan) Run(ctx context.Context, reason string) error {
	es, err := readJournal(p.Journal)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, e := range es {
		done[e.Step+"/"+e.Group] = true
	}
	if len(es) == 0 {
		p.record(entry{Step: "start", Reason: reason})
		p.Log.Warn("shutdown plan started", "reason", reason)
	} else {
		p.Log.Warn("shutdown plan resumed from the journal", "reason", es[0].Reason, "steps_done", len(es)-1)
	}
	for _, g := range p.Groups {
		if done["group/"+g.Name] {
			// Its secondaries went down already: keep showing them FSD.
			p.Do.StartGroup(g.Name)
			continue
		}
		p.phase("group " + g.Name)
		p.runGroup(ctx, g)
		if err := ctx.Err(); err != nil {
			// Stopped (SIGTERM, an update): the group is not done; the
			// next start resumes here.
			p.Log.Warn("shutdown plan interrupted; the next start resumes it", "group", g.Name)
			return fmt.Errorf("shutdown plan interrupted in group %s: %w", g.Name, err)
		}
		p.record(entry{Step: "group", Group: g.Name})
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("shutdown plan interrupted: %w", err)
	}
	if !done["ups-off/"] {
		p.phase("ups-off")
		if err := p.Do.UPSOff(ctx); err != nil {
			p.Log.Error("telling the UPS to power off (shutdown.return) failed; the gate powers off anyway", "err", err)
		} else {
			p.Log.Warn("UPS told to cut its output and return when mains is back (shutdown.return)")
		}
		p.record(entry{Step: "ups-off"})
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("shutdown plan interrupted before the power-off: %w", err)
	}
	p.phase("poweroff")
	p.record(entry{Step: "poweroff"})
	p.Log.Warn("the gate powers itself off")
	return p.Do.PowerOff()
}

func (p *Plan) hostState(h, st string) {
	if p.HostState != nil {
		p.HostState(h, st)
	}
}

func (p *Plan) runGroup(ctx context.Context, g Group) {
	start := time.Now()
	gctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	p.Log.Warn("group shutting down", "group", g.Name, "hosts", len(g.Hosts), "timeout", g.Timeout)
	for _, s := range g.PreSteps {
		if err := p.Do.PreStep(gctx, g, s); err != nil {
			p.Log.Error("pre-step failed; going on", "group", g.Name, "step", s, "err", err)
		} else {
			p.Log.Info("pre-step done", "group", g.Name, "step", s)
		}
	}
	p.Do.StartGroup(g.Name)
	var wg sync.WaitGroup
	for _, h := range g.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.hostState(h.Name, "shutting-down")
			e := p.waitDown(gctx, g, h, start)
			if ctx.Err() == nil { // not stopped: the outcome is true
				p.record(e)
			}
		}()
	}
	wg.Wait()
	p.Log.Warn("group done", "group", g.Name, "took", time.Since(start).Round(time.Millisecond))
}

// waitDown has host h shut down (SSH) or waits for its upsmon to log
// out (NUT), then waits until it no longer answers on the LAN, bounded
// by gctx (the group's timeout). It logs and returns the outcome.
func (p *Plan) waitDown(gctx context.Context, g Group, h Host, start time.Time) entry {
	e := entry{Step: "host", Group: g.Name, Host: h.Name, Outcome: "timeout"}
	since := func() float64 { return time.Since(start).Seconds() }
	every := p.ProbeEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	probes := p.DownProbes
	if probes <= 0 {
		probes = 3
	}
	wait := func() bool {
		select {
		case <-gctx.Done():
			return false
		case <-time.After(every):
			return true
		}
	}
	if h.SSH {
		if err := p.Do.SSHShutdown(gctx, h); err != nil {
			p.Log.Error("host shutdown command failed", "group", g.Name, "host", h.Name, "err", err)
		} else {
			p.Log.Info("host told to shut down", "group", g.Name, "host", h.Name, "method", "ssh")
			e.Outcome = "told"
		}
	} else {
		for p.Do.LoggedIn(h.NUTUser) {
			if !wait() {
				p.Log.Error("host did not go down in time (its upsmon is still logged in); going on", "group", g.Name, "host", h.Name, "timeout", g.Timeout)
				p.hostState(h.Name, "timeout")
				return e
			}
		}
		e.LoggedOut = since()
		p.hostState(h.Name, "logged-out")
		p.Log.Info("host's upsmon logged out (its shutdown began)", "group", g.Name, "host", h.Name, "after", secs(e.LoggedOut))
	}
	for misses := 0; misses < probes; {
		if gctx.Err() != nil {
			break
		}
		if p.Do.Answers(gctx, h) {
			misses = 0
			if !wait() {
				break
			}
			continue
		}
		misses++
	}
	if gctx.Err() != nil {
		p.Log.Error("host did not go down in time (it still answers on the LAN); going on", "group", g.Name, "host", h.Name, "timeout", g.Timeout)
		p.hostState(h.Name, "timeout")
		return e
	}
	e.Outcome, e.Down = "down", since()
	p.hostState(h.Name, "down")
	args := []any{"group", g.Name, "host", h.Name, "after", secs(e.Down)}
	if e.LoggedOut > 0 {
		args = append(args, "after_logout", secs(e.Down-e.LoggedOut))
	}
	p.Log.Info("host down (no answer on the LAN)", args...)
	return e
}

func secs(f float64) time.Duration {
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond)
}
