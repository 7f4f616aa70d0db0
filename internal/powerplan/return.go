package powerplan

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// The return plan brings the site back after an outage whose shutdown
// plan ran: it waits until the UPS is on line power and charged enough
// (a second cut must not catch the site half up), then powers the groups
// on in the reverse of the shutdown order (ceph before compute): a host
// not up after WakeAfter gets Wake-on-LAN packets, WakeTries times, one
// WakeAfter apart, and is reported missing after that (a host without
// WoL is waited for as long); once a group's
// hosts are up (or missing) its pre-steps are undone, in reverse:
// ceph-noout's `ceph osd unset noout` only when every host of the group
// is back (with an OSD host down it would start a rebalance: noout is
// left set and said so), k3s-drain's `kubectl uncordon` when the drained
// node is back.
//
// It has a journal of its own (JSON lines like the shutdown plan's):
//
//	{"step":"return-start","reason":"<the outage: the shutdown journal's archive>","at":...}
//	{"step":"charged","at":...}
//	{"step":"up","group":"ceph","host":"ceph-1","at":...}      (or "missing")
//	{"step":"undo","group":"ceph","pre":"ceph-noout","at":...} (or "kept", with reason)
//	{"step":"return-done","at":...}
//
// A restarted upsd resumes it, skipping what the journal says is done; a
// finished one is archived and never run again for the same outage. A
// second cut cancels it (the shutdown plan takes over) and it is archived
// with a last {"step":"abandoned"} line.

// ReturnActions are what the return plan does to the world.
type ReturnActions interface {
	// Power is the UPS's state: on line power, and its charge (percent,
	// -1 unknown); ok false when there is no data.
	Power() (online bool, charge float64, ok bool)
	// Up reports whether a host is up: its NUT secondary logged in, or
	// its SSH port accepting connections.
	Up(ctx context.Context, h Host) bool
	// Wake sends Wake-on-LAN magic packets to the host's MACs.
	Wake(ctx context.Context, h Host) error
	// Undo undoes a group's pre-step (see the package documentation).
	Undo(ctx context.Context, g Group, step string) error
}

// Return is the way back after an outage.
type Return struct {
	Groups  []Group // the shutdown order; powered on in reverse
	Journal string
	Do      ReturnActions
	Log     *slog.Logger
	// MinCharge is the charge (percent) to wait for; 0 waits for line
	// power only.
	MinCharge int
	// WakeAfter is how long a host has to come up by itself before it is
	// woken; WakeTries bounds the wakes (then it is missing).
	WakeAfter time.Duration
	WakeTries int
	// Every spaces the checks (default 1s).
	Every     time.Duration
	Phase     func(string)
	HostState func(host, state string)
}

// ReturnState says what the return journal holds at start-up.
func (r *Return) State() (State, string, error) {
	es, err := readJournal(r.Journal)
	if err != nil || len(es) == 0 {
		return NoPlan, "", err
	}
	for _, e := range es {
		if e.Step == "return-done" || e.Step == "abandoned" {
			arch, err := r.plan().archive(es)
			return Finished, arch, err
		}
	}
	return Unfinished, es[0].Reason, nil
}

func (r *Return) plan() *Plan { return &Plan{Journal: r.Journal, Log: r.Log} }

func (r *Return) record(e entry) { r.plan().record(e) }

func (r *Return) phase(s string) {
	if r.Phase != nil {
		r.Phase(s)
	}
}

func (r *Return) hostState(h, s string) {
	if r.HostState != nil {
		r.HostState(h, s)
	}
}

// Abandon ends a return plan that a new cut interrupted: journaled and
// archived, never resumed.
func (r *Return) Abandon(why string) {
	es, err := readJournal(r.Journal)
	if err != nil || len(es) == 0 {
		return
	}
	r.record(entry{Step: "abandoned", Reason: why})
	if arch, err := r.plan().Archive(); err != nil {
		r.Log.Error("archiving the abandoned return plan's journal", "err", err)
	} else {
		r.Log.Warn("return plan abandoned", "reason", why, "archive", arch)
	}
}

// Run runs the return plan for outage (a name for it), resuming its
// journal. It returns when the site is back (or what could be), or ctx
// is done (a new cut, a stop).
func (r *Return) Run(ctx context.Context, outage string) error {
	es, err := readJournal(r.Journal)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, e := range es {
		switch e.Step {
		case "charged":
			done["charged"] = true
		case "up", "missing":
			done["host/"+e.Host] = true
			done[e.Step+"/"+e.Host] = true
		case "undo", "kept":
			done["pre/"+e.Group+"/"+e.Pre] = true
		}
	}
	if len(es) == 0 {
		r.record(entry{Step: "return-start", Reason: outage})
		r.Log.Warn("return plan started", "outage", outage)
	} else {
		r.Log.Warn("return plan resumed from its journal", "outage", es[0].Reason, "steps_done", len(es)-1)
	}
	for _, g := range r.Groups { // what the journal knows, else off
		for _, h := range g.Hosts {
			switch {
			case done["up/"+h.Name]:
				r.hostState(h.Name, "up")
			case done["missing/"+h.Name]:
				r.hostState(h.Name, "missing")
			default:
				r.hostState(h.Name, "down")
			}
		}
	}
	every := r.Every
	if every <= 0 {
		every = time.Second
	}
	sleep := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
			return nil
		}
	}
	if !done["charged"] {
		r.phase("waiting for power")
		said := false
		for {
			on, charge, ok := r.Do.Power()
			if ok && on && (r.MinCharge <= 0 || charge >= float64(r.MinCharge)) {
				break
			}
			if !said && ok && on {
				r.Log.Info("mains is back: waiting for the battery's charge before powering the site on", "charge", charge, "min_charge", r.MinCharge)
				said = true
			}
			if err := sleep(); err != nil {
				return fmt.Errorf("return plan stopped while waiting for power: %w", err)
			}
		}
		r.record(entry{Step: "charged"})
		r.Log.Info("the UPS is on line power and charged: powering the site on")
	}
	for _, g := range slices.Backward(r.Groups) {
		r.phase("group " + g.Name)
		up := r.groupUp(ctx, g, done, sleep)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("return plan stopped in group %s: %w", g.Name, err)
		}
		for _, s := range slices.Backward(g.PreSteps) {
			if done["pre/"+g.Name+"/"+s] {
				continue
			}
			r.undo(ctx, g, s, up)
		}
	}
	r.record(entry{Step: "return-done"})
	r.phase("done")
	r.Log.Warn("return plan done")
	if arch, err := r.plan().Archive(); err != nil {
		r.Log.Error("archiving the return plan's journal", "err", err)
	} else {
		r.Log.Info("return plan journal archived", "archive", arch)
	}
	return nil
}

// groupUp waits for each host of g to come up, waking it when it does
// not; it returns which hosts are up.
func (r *Return) groupUp(ctx context.Context, g Group, done map[string]bool, sleep func() error) map[string]bool {
	var mu sync.Mutex
	up := map[string]bool{}
	var wg sync.WaitGroup
	for _, h := range g.Hosts {
		if done["host/"+h.Name] {
			mu.Lock()
			up[h.Name] = done["up/"+h.Name]
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r.hostState(h.Name, "powering-on")
			wakes := 0
			next := start.Add(r.WakeAfter)
			for !r.Do.Up(ctx, h) {
				if time.Now().After(next) {
					// A host without WoL gets as long as one that is
					// woken WakeTries times.
					if wakes >= r.WakeTries {
						r.record(entry{Step: "missing", Group: g.Name, Host: h.Name})
						r.hostState(h.Name, "missing")
						r.Log.Error("host did not come back; going on without it", "group", g.Name, "host", h.Name, "waited", time.Since(start).Round(time.Second), "wake_on_lan", h.Wake)
						return
					}
					wakes++
					if !h.Wake {
						// wake: none: it powers on by itself, or a human does.
					} else if err := r.Do.Wake(ctx, h); err != nil {
						r.Log.Error("Wake-on-LAN", "host", h.Name, "err", err)
					} else {
						r.Log.Info("host woken (Wake-on-LAN)", "group", g.Name, "host", h.Name, "try", wakes, "of", r.WakeTries)
					}
					next = time.Now().Add(r.WakeAfter)
				}
				if sleep() != nil {
					return
				}
			}
			r.record(entry{Step: "up", Group: g.Name, Host: h.Name})
			r.hostState(h.Name, "up")
			r.Log.Info("host up", "group", g.Name, "host", h.Name, "after", time.Since(start).Round(time.Millisecond), "wakes", wakes)
			mu.Lock()
			up[h.Name] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	return up
}

// undo undoes pre-step s of g when the hosts it needs are up.
func (r *Return) undo(ctx context.Context, g Group, s string, up map[string]bool) {
	var missing []string
	for _, h := range g.Hosts {
		if !up[h.Name] {
			missing = append(missing, h.Name)
		}
	}
	need := missing
	if s == "k3s-drain" && len(g.Hosts) > 0 && up[g.Hosts[0].Name] {
		need = nil // the drained node is back; uncordon it
	}
	if len(need) > 0 {
		why := fmt.Sprintf("%v not back", need)
		if s == "ceph-noout" {
			why += ": unsetting noout with an OSD host down would start a rebalance"
		}
		r.record(entry{Step: "kept", Group: g.Name, Pre: s, Reason: why})
		r.Log.Error("pre-step left in place", "group", g.Name, "step", s, "reason", why)
		return
	}
	if err := r.Do.Undo(ctx, g, s); err != nil {
		r.Log.Error("undoing a pre-step failed; it is left in place", "group", g.Name, "step", s, "err", err)
		r.record(entry{Step: "kept", Group: g.Name, Pre: s, Reason: err.Error()})
		return
	}
	r.record(entry{Step: "undo", Group: g.Name, Pre: s})
	r.Log.Info("pre-step undone", "group", g.Name, "step", s)
}
