package powerplan

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	p := Policy{TrustLB: true, Charge: 40, Runtime: 5 * time.Minute, OnBattery: 10 * time.Minute, Deadtime: 15 * time.Second}
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		policy Policy
		steps  []map[string]string // observed in order, one second apart
		lost   time.Duration       // then no data for this long
		want   bool
	}{
		{"online", p, []map[string]string{{"ups.status": "OL"}}, 0, false},
		{"on battery", p, []map[string]string{{"ups.status": "OB DISCHRG", "battery.charge": "90"}}, 0, false},
		{"OB LB", p, []map[string]string{{"ups.status": "OB LB"}}, 0, true},
		{"OB LB ignored", Policy{Deadtime: time.Minute}, []map[string]string{{"ups.status": "OB LB"}}, 0, false},
		{"OL LB", p, []map[string]string{{"ups.status": "OL LB"}}, 0, false},
		{"FSD", p, []map[string]string{{"ups.status": "FSD OL"}}, 0, true},
		{"charge", p, []map[string]string{{"ups.status": "OB", "battery.charge": "39"}}, 0, true},
		{"runtime", p, []map[string]string{{"ups.status": "OB", "battery.runtime": "120"}}, 0, true},
		{"lost while OL", p, []map[string]string{{"ups.status": "OL"}}, time.Hour, false},
		{"lost while OB", p, []map[string]string{{"ups.status": "OB"}}, 16 * time.Second, true},
		{"power back", p, []map[string]string{{"ups.status": "OB"}, {"ups.status": "OL CHRG"}}, time.Minute, false},
	} {
		w := &Watch{P: tc.policy}
		var crit bool
		now := t0
		for _, v := range tc.steps {
			crit, _ = w.Observe(now, v)
			now = now.Add(time.Second)
		}
		if tc.lost > 0 {
			crit, _ = w.Lost(now.Add(tc.lost))
		}
		if crit != tc.want {
			t.Errorf("%s: critical %v, want %v", tc.name, crit, tc.want)
		}
	}
	w := &Watch{P: p}
	w.Observe(t0, map[string]string{"ups.status": "OB"})
	if c, _ := w.Observe(t0.Add(11*time.Minute), map[string]string{"ups.status": "OB"}); !c {
		t.Error("11 minutes on battery is not critical")
	}
}

type fake struct {
	mu     sync.Mutex
	events []string
	logged map[string]bool
	slow   string          // this user never logs out
	alive  map[string]bool // these hosts answer on the LAN even after logging out
	probed map[string]int
}

func (f *fake) log(s string) { f.mu.Lock(); f.events = append(f.events, s); f.mu.Unlock() }
func (f *fake) StartGroup(g string) {
	f.log("fsd " + g)
	f.mu.Lock()
	defer f.mu.Unlock()
	for u := range f.logged {
		if strings.HasPrefix(u, g) && u != f.slow {
			delete(f.logged, u)
		}
	}
}
func (f *fake) LoggedIn(u string) bool { f.mu.Lock(); defer f.mu.Unlock(); return f.logged[u] }
func (f *fake) Answers(ctx context.Context, h Host) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.probed == nil {
		f.probed = map[string]int{}
	}
	f.probed[h.Name]++
	return f.alive[h.Name] || f.logged[h.NUTUser]
}
func (f *fake) PreStep(ctx context.Context, g Group, s string) error {
	f.log("pre " + g.Name + " " + s)
	return nil
}
func (f *fake) SSHShutdown(ctx context.Context, h Host) error { f.log("ssh " + h.Name); return nil }
func (f *fake) UPSOff(ctx context.Context) error              { f.log("ups-off"); return nil }
func (f *fake) PowerOff() error                               { f.log("poweroff"); return nil }

func TestPlanOrderTimeoutsAndJournal(t *testing.T) {
	dir := t.TempDir()
	groups := []Group{
		{Name: "compute", Timeout: time.Second, PreSteps: []string{"k3s-drain"}, Hosts: []Host{{Name: "compute-1", NUTUser: "compute-1"}}},
		{Name: "ceph", Timeout: 500 * time.Millisecond, PreSteps: []string{"ceph-noout"}, Hosts: []Host{{Name: "ceph-1", NUTUser: "ceph-1"}, {Name: "ceph-2", NUTUser: "ceph-2"}, {Name: "nas", SSH: true}}},
	}
	f := &fake{logged: map[string]bool{"compute-1": true, "ceph-1": true, "ceph-2": true}, slow: "ceph-2"}
	p := &Plan{Groups: groups, Journal: filepath.Join(dir, "journal"), Do: f, Log: slog.New(slog.DiscardHandler)}
	if err := p.Run(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.events, ", ")
	want := "pre compute k3s-drain, fsd compute, pre ceph ceph-noout, fsd ceph, ssh nas, ups-off, poweroff"
	if got != want {
		t.Fatalf("plan:\n got %s\nwant %s", got, want)
	}
	// At the next boot the finished journal is archived, never re-run.
	if st, arch, err := p.Check(); st != Finished || arch == "" || err != nil {
		t.Fatalf("Check after a finished plan: %v %q %v", st, arch, err)
	}
	if st, _, _ := p.Check(); st != NoPlan {
		t.Fatalf("journal not archived: %v", st)
	}
	// An unfinished plan resumes where it was.
	p.record(entry{Step: "start", Reason: "test"})
	p.record(entry{Step: "group", Group: "compute"})
	if st, _, _ := p.Check(); st != Unfinished {
		t.Fatalf("unfinished journal: %v", st)
	}
	f2 := &fake{logged: map[string]bool{}}
	p.Do = f2
	p.Run(context.Background(), "")
	got = strings.Join(f2.events, ", ")
	want = "fsd compute, pre ceph ceph-noout, fsd ceph, ssh nas, ups-off, poweroff"
	if got != want {
		t.Fatalf("resumed plan:\n got %s\nwant %s", got, want)
	}
}

// A plan stopped mid-group (SIGTERM) records nothing false: the group is
// not marked done and the gate is not powered off; the next start resumes
// the group.
func TestPlanInterrupted(t *testing.T) {
	dir := t.TempDir()
	groups := []Group{
		{Name: "compute", Timeout: time.Minute, Hosts: []Host{{Name: "compute-1", NUTUser: "compute-1"}}},
		{Name: "ceph", Timeout: time.Minute, Hosts: []Host{{Name: "ceph-1", NUTUser: "ceph-1"}}},
	}
	f := &fake{logged: map[string]bool{"compute-1": true}, slow: "compute-1"}
	p := &Plan{Groups: groups, Journal: filepath.Join(dir, "journal"), Do: f, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx, "test"); err == nil {
		t.Fatal("an interrupted plan returned no error")
	}
	if got, want := strings.Join(f.events, ", "), "fsd compute"; got != want {
		t.Fatalf("interrupted plan:\n got %s\nwant %s", got, want)
	}
	if st, _, _ := p.Check(); st != Unfinished {
		t.Fatalf("journal after the interruption: %v, want unfinished", st)
	}
	f2 := &fake{logged: map[string]bool{}}
	p.Do = f2
	if err := p.Run(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(f2.events, ", "), "fsd compute, fsd ceph, ups-off, poweroff"; got != want {
		t.Fatalf("resumed plan:\n got %s\nwant %s", got, want)
	}
}

// A host whose upsmon logged out but which still answers on the LAN is not
// down: the next group waits for it up to the group's timeout; a host
// that goes silent is down after DownProbes unanswered probes. The journal
// says which.
func TestPlanWaitsUntilDown(t *testing.T) {
	dir := t.TempDir()
	groups := []Group{
		{Name: "compute", Timeout: 700 * time.Millisecond, Hosts: []Host{{Name: "compute-1", NUTUser: "compute-1"}, {Name: "compute-2", NUTUser: "compute-2"}}},
		{Name: "ceph", Timeout: time.Second, Hosts: []Host{{Name: "ceph-1", NUTUser: "ceph-1"}}},
	}
	f := &fake{logged: map[string]bool{"compute-1": true, "compute-2": true, "ceph-1": true}, alive: map[string]bool{"compute-1": true}}
	var mu sync.Mutex
	states := map[string]string{}
	p := &Plan{Groups: groups, Journal: filepath.Join(dir, "journal"), Do: f, Log: slog.New(slog.DiscardHandler),
		ProbeEvery: 10 * time.Millisecond, HostState: func(h, s string) { mu.Lock(); states[h] = s; mu.Unlock() }}
	start := time.Now()
	if err := p.Run(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Errorf("the plan went on after %s, before compute-1 (still answering) reached the group's timeout", took)
	}
	if got, want := strings.Join(f.events, ", "), "fsd compute, fsd ceph, ups-off, poweroff"; got != want {
		t.Fatalf("plan:\n got %s\nwant %s", got, want)
	}
	if f.probed["compute-2"] != 3 || f.probed["ceph-1"] != 3 {
		t.Errorf("probes until down: %v, want 3 each for compute-2 and ceph-1", f.probed)
	}
	if states["compute-1"] != "timeout" || states["compute-2"] != "down" || states["ceph-1"] != "down" {
		t.Errorf("host states %v", states)
	}
	es, _ := readJournal(p.Journal)
	outcome := map[string]string{}
	for _, e := range es {
		if e.Step == "host" {
			outcome[e.Host] = e.Outcome
			if e.Outcome == "down" && (e.LoggedOut <= 0 || e.Down < e.LoggedOut) {
				t.Errorf("%s: logged out at %.3fs, down at %.3fs", e.Host, e.LoggedOut, e.Down)
			}
		}
	}
	if outcome["compute-1"] != "timeout" || outcome["compute-2"] != "down" || outcome["ceph-1"] != "down" {
		t.Errorf("journaled outcomes %v", outcome)
	}
}
