package status

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"gate/config"
	"gate/internal/alert"
	"gate/internal/atomicfile"
)

// Watcher derives events from successive snapshots. What it has seen is
// kept on /perm, so a restart (or the reboot after an outage) neither
// repeats an event nor misses one written meanwhile: a plan journal's
// steps are reported once each, also when the journal was archived at the
// next boot before the watcher read it.
type Watcher struct {
	Path   string // state file on /perm ("" keeps it in memory)
	Config *config.Config
	// TunnelDownAfter: the tunnel without an active hub that is up this
	// long is reported (0: config.DefaultTunnelDownAfter).
	TunnelDownAfter time.Duration
	// HostBackAfter: after a finished shutdown plan and mains back, a NUT
	// host not connected again within this is reported (0:
	// config.DefaultHostBackAfter).
	HostBackAfter time.Duration

	st     watchState
	loaded bool
}

type watchState struct {
	Init       bool              `json:"init"`
	OnBattery  bool              `json:"on_battery"`
	LowBattery bool              `json:"low_battery"`
	Journals   map[string]int    `json:"journals"` // journal start → entries reported
	BackSince  time.Time         `json:"back_since,omitzero"`
	BackPlan   string            `json:"back_plan,omitempty"` // the journal whose return is watched
	BackDone   map[string]bool   `json:"back_done"`
	ActiveHub  string            `json:"active_hub,omitempty"`
	DownSince  time.Time         `json:"tunnel_down_since,omitzero"`
	DownSent   bool              `json:"tunnel_down_sent,omitempty"`
	Blocked    map[string]string `json:"dns_blocked"`
	Results    map[string]string `json:"reimage_results"`
	Bans       float64           `json:"bans"`
	Unsynced   bool              `json:"clock_unsynced,omitempty"`
}

func (w *Watcher) load() {
	w.loaded = true
	// A site without alerts still shows the events on its page: a zero
	// threshold would report the tunnel down before its first handshake
	// at every start, and every host missing the moment mains returns.
	if w.TunnelDownAfter <= 0 {
		w.TunnelDownAfter = config.DefaultTunnelDownAfter
	}
	if w.HostBackAfter <= 0 {
		w.HostBackAfter = config.DefaultHostBackAfter
	}
	if w.Path == "" {
		return
	}
	if b, err := os.ReadFile(w.Path); err == nil {
		if json.Unmarshal(b, &w.st) != nil {
			w.st = watchState{}
		}
	}
	// The tunnel's down time counts from this start: after a reboot the
	// vpn needs its first handshake, and the time before does not count.
	w.st.DownSince = time.Time{}
}

func (w *Watcher) save(before watchState) error {
	if w.Path == "" || reflect.DeepEqual(before, w.st) {
		return nil
	}
	b, _ := json.Marshal(w.st)
	if err := atomicfile.WriteFile(w.Path, b, 0o600); err != nil {
		return fmt.Errorf("status: watcher state: %w", err)
	}
	return nil
}

func copyState(s watchState) watchState {
	c := s
	c.Journals = cloneMap(s.Journals)
	c.BackDone = cloneMap(s.BackDone)
	c.Blocked = cloneMap(s.Blocked)
	c.Results = cloneMap(s.Results)
	return c
}

func cloneMap[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Observe returns the events between the previous snapshot and s; plans
// and returns are upsd's shutdown and return plan journals
// (ReadJournals). The first observation ever only sets the baseline.
func (w *Watcher) Observe(s *Snapshot, plans, returns []Journal) ([]alert.Event, error) {
	if !w.loaded {
		w.load()
	}
	before := copyState(w.st)
	first := !w.st.Init
	for _, m := range []*map[string]int{&w.st.Journals} {
		if *m == nil {
			*m = map[string]int{}
		}
	}
	for _, m := range []*map[string]bool{&w.st.BackDone} {
		if *m == nil {
			*m = map[string]bool{}
		}
	}
	for _, m := range []*map[string]string{&w.st.Blocked, &w.st.Results} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
	var out []alert.Event
	add := func(at time.Time, kind, source, sev, title, text string) {
		if !first {
			// A plan's steps happen once each per outage: never held back.
			always := strings.HasPrefix(source, "plan ")
			out = append(out, alert.Event{Time: at, Kind: kind, Source: source, Severity: sev, Title: title, Text: text, Always: always})
		}
	}
	now := s.Time
	w.power(s, plans, returns, add)
	w.returns(returns, add)
	w.tunnel(s, now, add)
	w.dns(s, now, add)
	w.hosts(s, now, add)
	if b := s.Bastion; b != nil && s.Errors["bastion"] == "" {
		if b.Bans > w.st.Bans {
			add(now, "bastion-ban", "bastion", alert.Warning, fmt.Sprintf("Bastion: %.0f source(s) banned", b.Bans-w.st.Bans), "A source failed authentication too often and is refused for bastion.ban_for.")
		}
		w.st.Bans = b.Bans // a restarted bastion counts from 0 again
	}
	if c := s.Gate.ClockSynced; c != nil {
		if !*c && !w.st.Unsynced {
			add(now, "clock-unsynced", "clock", alert.Warning, "The gate's clock is not synced", "TLS and WireGuard handshakes need a believable clock.")
		}
		w.st.Unsynced = !*c
	}
	w.st.Init = true
	return out, w.save(before)
}

type addFunc func(at time.Time, kind, source, sev, title, text string)

func journalKey(j Journal) string { return j.Entries[0].At.UTC().Format(time.RFC3339Nano) }

func finished(j Journal) bool {
	for _, e := range j.Entries {
		if e.Step == "poweroff" {
			return true
		}
	}
	return false
}

func (w *Watcher) power(s *Snapshot, journals, returns []Journal, add addFunc) {
	p := s.Power
	if p == nil {
		return
	}
	now := s.Time
	// The order within one reading follows cause and effect: mains lost
	// and low battery before the plan's steps read at the same time, mains
	// back after them (after a reboot the journal holds the steps written
	// just before the power-off).
	charge := optional(p.Charge, "%.0f %%")
	back := false
	if p.Status != "" {
		ob, lb := hasFlag(p.Flags, "OB"), hasFlag(p.Flags, "LB")
		if ob && !w.st.OnBattery {
			add(now, "mains-lost", "ups", alert.Critical, "Mains lost: the UPS is on battery", fmt.Sprintf("ups.status %s, charge %s, runtime %s.", p.Status, charge, optional(p.Runtime, "%.0f s")))
		}
		back = !ob && hasFlag(p.Flags, "OL") && w.st.OnBattery
		if lb && !w.st.LowBattery {
			add(now, "low-battery", "ups", alert.Critical, "Low battery", fmt.Sprintf("ups.status %s, charge %s.", p.Status, charge))
		}
		w.st.OnBattery, w.st.LowBattery = ob, lb
	}
	defer func() {
		if back {
			add(now, "mains-back", "ups", alert.Info, "Mains back: the UPS is on line power", fmt.Sprintf("ups.status %s, charge %s.", p.Status, charge))
		}
	}()
	for _, j := range journals {
		key := journalKey(j)
		src := "plan " + key
		for i := w.st.Journals[key]; i < len(j.Entries); i++ {
			e := j.Entries[i]
			switch e.Step {
			case "start":
				add(e.At, "plan-started", src, alert.Critical, "Shutdown plan started", "Reason: "+e.Reason)
			case "host":
				// upsd's outcome for each host: down (its upsmon logged
				// out and it stopped answering on the LAN), told (SSH), or
				// timeout: it did not go down in its group's turn.
				if e.Outcome == "timeout" {
					add(e.At, "host-not-down", src, alert.Warning, e.Host+" did not go down in its group's turn",
						"Group "+e.Group+"'s timeout ran out while its upsmon was still logged in or it still answered on the LAN; the plan went on.")
				}
			case "group":
				add(e.At, "plan-group", src, alert.Warning, "Shutdown plan: group "+e.Group+" is down", "")
			case "ups-off":
				add(e.At, "plan-ups-off", src, alert.Warning, "Shutdown plan: the UPS was told to cut its output and return with mains", "")
			case "poweroff":
				add(e.At, "plan-finished", src, alert.Critical, "Shutdown finished: the gate powers itself off", "The site is down until mains returns.")
			default: // the return plan's steps, or later ones
				add(e.At, "plan-"+e.Step, src, alert.Info, "Plan step: "+strings.ReplaceAll(e.Step, "-", " ")+" "+e.Group, e.Reason)
			}
		}
		w.st.Journals[key] = len(j.Entries)
	}
	// After a finished plan and mains back: the hosts must come back (the
	// return plan, when upsd runs one, says itself which did not).
	if n := len(journals); n > 0 && finished(journals[n-1]) && p.OnLine() && !returnSince(returns, journals[n-1]) {
		key := journalKey(journals[n-1])
		if w.st.BackPlan != key {
			w.st.BackPlan, w.st.BackSince = key, now
		}
		if !w.st.BackDone[key] && now.Sub(w.st.BackSince) >= w.HostBackAfter {
			var missing []string
			for _, h := range s.Hosts {
				if h.NUT == "not connected" {
					missing = append(missing, h.Name)
				}
			}
			for _, m := range missing {
				add(now, "host-not-back", "host/"+m, alert.Warning, m+" did not come back after the outage", fmt.Sprintf("Its upsmon has not connected in the %s since mains returned.", w.HostBackAfter))
			}
			w.st.BackDone[key] = true
		}
	}
}

// returnSince says whether a return plan began after plan's start.
func returnSince(returns []Journal, plan Journal) bool {
	n := len(returns)
	return n > 0 && returns[n-1].Entries[0].At.After(plan.Entries[0].At)
}

// returns reports the return plan's steps, once each.
func (w *Watcher) returns(journals []Journal, add addFunc) {
	for _, j := range journals {
		key := "return " + journalKey(j)
		for i := w.st.Journals[key]; i < len(j.Entries); i++ {
			e := j.Entries[i]
			src := "plan " + key
			switch e.Step {
			case "return-start":
				add(e.At, "return-started", src, alert.Info, "Return plan started: the site is powered on again in order", "After: "+e.Reason)
			case "up":
				add(e.At, "host-back", src, alert.Info, e.Host+" is back", "Group "+e.Group+".")
			case "missing":
				add(e.At, "host-not-back", src, alert.Warning, e.Host+" did not come back after the outage", "Group "+e.Group+": not up after its Wake-on-LAN tries.")
			case "undo":
				add(e.At, "return-undo", src, alert.Info, "Return plan: "+e.Pre+" undone for "+e.Group, "")
			case "kept":
				add(e.At, "return-kept", src, alert.Warning, "Return plan: "+e.Pre+" left in place for "+e.Group, e.Reason)
			case "return-done":
				add(e.At, "return-done", src, alert.Info, "Return plan done: the site is back", "")
			case "abandoned":
				add(e.At, "return-abandoned", src, alert.Warning, "Return plan abandoned: the power failed again", "")
			default:
				add(e.At, "return-"+e.Step, src, alert.Info, "Return plan step: "+e.Step+" "+e.Group+" "+e.Host, e.Reason)
			}
		}
		w.st.Journals[key] = len(j.Entries)
	}
}

func (w *Watcher) tunnel(s *Snapshot, now time.Time, add addFunc) {
	t := s.Tunnel
	if t == nil || s.Errors["vpn"] != "" {
		return
	}
	if t.Active != "" && w.st.ActiveHub != "" && t.Active != w.st.ActiveHub {
		add(now, "tunnel-failover", "vpn", alert.Warning, fmt.Sprintf("Tunnel moved from hub %s to %s", w.st.ActiveHub, t.Active), "")
	}
	if t.Active != "" {
		w.st.ActiveHub = t.Active
	}
	h, ok := t.ActiveHub()
	if ok && h.Up {
		if w.st.DownSent {
			add(now, "tunnel-up", "vpn", alert.Info, "Tunnel up again through hub "+h.Name, fmt.Sprintf("It was down since %s.", w.st.DownSince.UTC().Format(time.RFC3339)))
		}
		w.st.DownSince, w.st.DownSent = time.Time{}, false
		return
	}
	if w.st.DownSince.IsZero() {
		w.st.DownSince = now
	}
	if !w.st.DownSent && now.Sub(w.st.DownSince) >= w.TunnelDownAfter {
		add(now, "tunnel-down", "vpn", alert.Critical, fmt.Sprintf("Tunnel down for %s", now.Sub(w.st.DownSince).Round(time.Second)), "No hub has answered a handshake within vpn.failover_after: the site is unreachable through the VPS.")
		w.st.DownSent = true
	}
}

func (w *Watcher) dns(s *Snapshot, now time.Time, add addFunc) {
	if s.DNS == nil {
		return
	}
	for _, r := range s.DNS.Records {
		if r.Blocked != "" && w.st.Blocked[r.Name] != r.Blocked {
			add(now, "dns-blocked", "dyndns", alert.Critical, "DNS updates blocked for "+r.Name, "The provider refused: "+r.Blocked+". The record is not updated again until the site file or its secret changes.")
		}
		if r.Blocked == "" {
			delete(w.st.Blocked, r.Name)
		} else {
			w.st.Blocked[r.Name] = r.Blocked
		}
	}
}

func (w *Watcher) hosts(s *Snapshot, now time.Time, add addFunc) {
	for _, h := range s.Hosts {
		res := h.LastResult
		if h.Installed != nil {
			res += "@" + h.Installed.UTC().Format(time.RFC3339)
		}
		if res == w.st.Results[h.Name] {
			continue
		}
		switch {
		case h.LastResult == "ok":
			add(now, "reimage-done", "host/"+h.Name, alert.Info, h.Name+" re-imaged", "The installed system phoned home.")
		case strings.HasPrefix(h.LastResult, "failed"):
			add(now, "reimage-failed", "host/"+h.Name, alert.Warning, h.Name+": re-imaging failed", h.LastResult)
		}
		w.st.Results[h.Name] = res
	}
}
