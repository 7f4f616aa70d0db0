package powerplan

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// site plays the hosts and the UPS for the return plan.
type site struct {
	mu      sync.Mutex
	events  []string
	charge  float64
	online  bool
	up      map[string]bool
	wakes   map[string]int
	wakeUp  map[string]bool // comes up when woken
	polls   int
	onPower func(polls int) // changes the UPS as time goes
}

func (s *site) log(e string) { s.events = append(s.events, e) }
func (s *site) Power() (bool, float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls++
	if s.onPower != nil {
		s.onPower(s.polls)
	}
	return s.online, s.charge, true
}
func (s *site) Up(ctx context.Context, h Host) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up[h.Name]
}
func (s *site) Wake(ctx context.Context, h Host) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wakes[h.Name]++
	s.log("wake " + h.Name)
	if s.wakeUp[h.Name] {
		s.up[h.Name] = true
		s.log("up " + h.Name)
	}
	return nil
}
func (s *site) Undo(ctx context.Context, g Group, step string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log("undo " + g.Name + " " + step)
	return nil
}

func returnGroups() []Group {
	return []Group{
		{Name: "compute", PreSteps: []string{"k3s-drain"}, Hosts: []Host{{Name: "compute-1", Wake: true}}},
		{Name: "ceph", PreSteps: []string{"ceph-noout"}, Hosts: []Host{{Name: "ceph-1", Wake: true}, {Name: "ceph-2", Wake: true}}},
	}
}

func TestReturn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      *site
		want   string // events in order
		wakes  map[string]int
		stateK string // journal step for ceph-noout
	}{
		{
			name: "ceph woken first, then compute; pre-steps undone after each group",
			s:    &site{online: true, charge: 80, up: map[string]bool{}, wakeUp: map[string]bool{"ceph-1": true, "ceph-2": true, "compute-1": true}},
			want: "wake ceph-1, up ceph-1, wake ceph-2, up ceph-2, undo ceph ceph-noout, wake compute-1, up compute-1, undo compute k3s-drain",
		},
		{
			name: "hosts that power on by themselves are not woken",
			s:    &site{online: true, charge: 80, up: map[string]bool{"ceph-1": true, "ceph-2": true, "compute-1": true}},
			want: "undo ceph ceph-noout, undo compute k3s-drain",
		},
		{
			name:  "a ceph host that never comes back: noout kept, compute still returns",
			s:     &site{online: true, charge: 80, up: map[string]bool{"ceph-1": true, "compute-1": true}},
			want:  "wake ceph-2, wake ceph-2, undo compute k3s-drain",
			wakes: map[string]int{"ceph-2": 2},
		},
		{
			name: "waits for the charge",
			s:    &site{online: false, up: map[string]bool{"ceph-1": true, "ceph-2": true, "compute-1": true}, onPower: func(n int) {}},
			want: "undo ceph ceph-noout, undo compute k3s-drain",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.wakes = map[string]int{}
			if s.onPower != nil {
				s.onPower = func(n int) { // on line power at the 3rd look, charged at the 6th
					s.online = n >= 3
					s.charge = float64(10 * n)
					if n == 5 {
						s.log("still charging")
					}
				}
			}
			r := &Return{Groups: returnGroups(), Journal: filepath.Join(t.TempDir(), "return"), Do: s, Log: slog.New(slog.DiscardHandler),
				MinCharge: 60, WakeAfter: 20 * time.Millisecond, WakeTries: 2, Every: 5 * time.Millisecond}
			if err := r.Run(context.Background(), "outage-1"); err != nil {
				t.Fatal(err)
			}
			got := byGroup(strings.Join(s.events, ", "))
			want := tc.want
			if s.onPower != nil {
				want = "still charging, " + want
			}
			if want = byGroup(want); got != want {
				t.Fatalf("events:\n got %s\nwant %s", got, want)
			}
			for h, n := range tc.wakes {
				if s.wakes[h] != n {
					t.Errorf("%s woken %d times, want %d", h, s.wakes[h], n)
				}
			}
			// Done: archived, nothing to resume.
			if st, _, _ := r.State(); st != NoPlan {
				t.Errorf("journal after the return plan: %v, want none", st)
			}
		})
	}
}

// A return plan stopped (upsd restarted) resumes: what is journaled is
// not done twice.
func TestReturnResumes(t *testing.T) {
	s := &site{online: true, charge: 100, up: map[string]bool{"ceph-1": true, "ceph-2": true}, wakes: map[string]int{}}
	r := &Return{Groups: returnGroups(), Journal: filepath.Join(t.TempDir(), "return"), Do: s, Log: slog.New(slog.DiscardHandler),
		WakeAfter: time.Hour, WakeTries: 1, Every: 5 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Run(ctx, "outage-1"); err == nil {
		t.Fatal("a stopped return plan returned no error")
	}
	if got := strings.Join(s.events, ", "); got != "undo ceph ceph-noout" {
		t.Fatalf("before the stop: %s", got)
	}
	if st, outage, _ := r.State(); st != Unfinished || outage != "outage-1" {
		t.Fatalf("journal after the stop: %v %q", st, outage)
	}
	s.events = nil
	s.up["compute-1"] = true
	if err := r.Run(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.events, ", "); got != "undo compute k3s-drain" {
		t.Fatalf("resumed: %s (ceph's noout undone twice?)", got)
	}
	// Abandoned by a new cut: archived, not resumed.
	r.record(entry{Step: "return-start", Reason: "outage-2"})
	r.Abandon("a new cut")
	if st, _, _ := r.State(); st != NoPlan {
		t.Errorf("abandoned journal: %v", st)
	}
}

// byGroup sorts the events between two undo steps: the hosts of a group
// come up concurrently, in any order.
func byGroup(events string) string {
	var out, seg []string
	for _, e := range strings.Split(events, ", ") {
		if strings.HasPrefix(e, "undo ") {
			slices.Sort(seg)
			out, seg = append(append(out, seg...), e), nil
			continue
		}
		seg = append(seg, e)
	}
	slices.Sort(seg)
	return strings.Join(append(out, seg...), ", ")
}

// A host with wake: none is never sent magic packets, and is waited for
// as long as one that is woken WakeTries times before it is missing.
func TestReturnNoWake(t *testing.T) {
	s := &site{online: true, charge: 100, up: map[string]bool{}, wakes: map[string]int{}}
	r := &Return{Groups: []Group{{Name: "ceph", Hosts: []Host{{Name: "nas"}}}}, Journal: filepath.Join(t.TempDir(), "return"), Do: s,
		Log: slog.New(slog.DiscardHandler), WakeAfter: 30 * time.Millisecond, WakeTries: 2, Every: 5 * time.Millisecond}
	start := time.Now()
	if err := r.Run(context.Background(), "outage"); err != nil {
		t.Fatal(err)
	}
	if s.wakes["nas"] != 0 {
		t.Errorf("a wake: none host got %d magic packets", s.wakes["nas"])
	}
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Errorf("reported missing after %s, before WakeAfter × (WakeTries+1)", took)
	}
}
