package clock

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/internal/ntp"
)

// fakeSystem is a clock that only moves when set.
type fakeSystem struct {
	mu       sync.Mutex
	now      time.Time
	steps    []time.Time
	slewed   time.Duration
	maxError time.Duration
	synced   bool
}

func (f *fakeSystem) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeSystem) Step(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now, f.steps = t, append(f.steps, t)
	return nil
}
func (f *fakeSystem) Slew(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slewed += d
	return nil
}
func (f *fakeSystem) MarkSynced(e time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced, f.maxError = true, e
	return nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestStartFloor(t *testing.T) {
	source := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	saved := time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		saved string // "" no file
		now   time.Time
		want  time.Time // the clock after Start
	}{
		{"first boot: the source date", "", time.Unix(3, 0), source},
		{"after a power cut: the saved time", saved.Format(time.RFC3339Nano) + "\n", time.Unix(3, 0), saved},
		{"a saved time older than the image: the source date", "2020-01-01T00:00:00Z", time.Unix(3, 0), source},
		{"garbage saved: the source date", "yesterday", time.Unix(3, 0), source},
		{"a clock already ahead is left alone", saved.Format(time.RFC3339Nano), saved.Add(time.Hour), saved.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "time")
			if tc.saved != "" {
				os.WriteFile(p, []byte(tc.saved), 0o644)
			}
			sys := &fakeSystem{now: tc.now}
			s := &Service{Floor: source, StatePath: p, System: sys, Log: quiet, Metrics: NewMetrics(nil)}
			s.Start()
			if got := sys.Now(); !got.Equal(tc.want) {
				t.Errorf("clock %v, want %v", got, tc.want)
			}
			if sys.synced {
				t.Error("the floor marked the clock synchronised")
			}
		})
	}
}

func TestRound(t *testing.T) {
	real := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := filepath.Join(t.TempDir(), "time")
	sys := &fakeSystem{now: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
	answers := map[string]ntp.Response{
		// far: a big root distance; near: the one to follow.
		"far:123":  {Offset: real.Sub(sys.now) + time.Hour, Delay: 10 * time.Millisecond, RootDistance: time.Second, Stratum: 3},
		"near:123": {Offset: real.Sub(sys.now), Delay: 10 * time.Millisecond, RootDistance: 5 * time.Millisecond, Stratum: 2},
	}
	s := &Service{
		Servers: []string{"down:123", "far:123", "near:123"}, StatePath: p, System: sys, Log: quiet, Metrics: NewMetrics(nil),
		Query: func(ctx context.Context, server string, now func() time.Time) (ntp.Response, error) {
			r, ok := answers[server]
			if !ok {
				return ntp.Response{}, errors.New("no answer")
			}
			r.Server = server
			return r, nil
		},
	}
	if err := s.round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sys.steps) != 1 || !sys.steps[0].Equal(real) {
		t.Fatalf("steps %v, want one to %v", sys.steps, real)
	}
	if !sys.synced || sys.maxError != 10*time.Millisecond {
		t.Errorf("synced %v within %v, want within 10ms", sys.synced, sys.maxError)
	}
	b, err := os.ReadFile(p)
	if err != nil || strings.TrimSpace(string(b)) != real.Format(time.RFC3339Nano) {
		t.Errorf("saved %q %v, want %v", b, err, real)
	}
	// A small offset is slewed, not stepped.
	answers["near:123"] = ntp.Response{Offset: 20 * time.Millisecond, Stratum: 2}
	delete(answers, "far:123")
	if err := s.round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sys.steps) != 1 || sys.slewed != 20*time.Millisecond {
		t.Errorf("steps %d slewed %v, want 1 and 20ms", len(sys.steps), sys.slewed)
	}
	// No server answers: an error naming them, the clock left alone.
	s.Servers = []string{"down:123", "gone:123"}
	err = s.round(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("round with no answer: %v", err)
	}
}

// An unsynchronised clock is never saved: it would raise the floor to a
// wrong time.
func TestNoSaveUnsynced(t *testing.T) {
	p := filepath.Join(t.TempDir(), "time")
	sys := &fakeSystem{now: time.Unix(100, 0)}
	s := &Service{Servers: []string{"x"}, StatePath: p, System: sys, Log: quiet, Metrics: NewMetrics(nil),
		Query: func(context.Context, string, func() time.Time) (ntp.Response, error) {
			return ntp.Response{}, errors.New("no answer")
		}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx)
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("saved an unsynchronised time: %v", err)
	}
}

func TestWait(t *testing.T) {
	var log strings.Builder
	l := slog.New(slog.NewTextHandler(&log, nil))
	calls := 0
	synced := func() (bool, error) { calls++; return calls > 2, nil }
	if !Wait(context.Background(), l, time.Minute, "WireGuard handshakes carry the time", synced) {
		t.Fatal("Wait gave up on a clock that became synchronised")
	}
	if !strings.Contains(log.String(), "waiting for a synchronised clock") || !strings.Contains(log.String(), "WireGuard handshakes carry the time") || !strings.Contains(log.String(), "clock synchronised") {
		t.Errorf("log:\n%s", log.String())
	}
	log.Reset()
	if Wait(context.Background(), l, 1500*time.Millisecond, "TSIG", func() (bool, error) { return false, nil }) {
		t.Fatal("Wait says synchronised")
	}
	if !strings.Contains(log.String(), "going on without a synchronised clock") {
		t.Errorf("log:\n%s", log.String())
	}
}
