// Package clock keeps the gate's clock. A Raspberry Pi has no real-time
// clock: it boots in 1970. Service sets the clock at start to a floor (the
// last time saved on /perm, or the image's source date, whichever is
// later), then from NTP (internal/ntp), and saves the time to /perm now and
// then, so that after a power cut the clock starts where it stopped.
//
// Whether the clock is synchronised is the kernel's own flag (adjtimex:
// STA_UNSYNC clear, the error bound below 16 s), which Service sets after
// each good NTP answer and which the kernel raises again by itself when no
// answer came for hours. That flag is the documented local interface
// between the clock daemon and its users: Synced reads it, and Wait is
// what the vpn and dyndns call before they sign anything with the time
// (WireGuard's handshake timestamp, TSIG) or check a certificate.
package clock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"gate/internal/atomicfile"
	"gate/internal/metrics"
	"gate/internal/ntp"
)

// System is the machine's clock.
type System interface {
	Now() time.Time
	// Step sets the clock to t.
	Step(t time.Time) error
	// Slew makes the kernel correct the clock by d gradually.
	Slew(d time.Duration) error
	// MarkSynced tells the kernel the clock is synchronised within
	// maxError.
	MarkSynced(maxError time.Duration) error
}

// Kernel is the real clock of the machine (settimeofday, adjtimex: root).
type Kernel struct{}

// Now returns time.Now().
func (Kernel) Now() time.Time { return time.Now() }

// Step sets the wall clock.
func (Kernel) Step(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	if err := unix.Settimeofday(&tv); err != nil {
		return fmt.Errorf("setting the clock to %s: %w", t.Format(time.RFC3339), err)
	}
	return nil
}

// Slew asks the kernel to correct d gradually (adjtime's single shot).
func (Kernel) Slew(d time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("slewing the clock by %s: %w", d, err)
	}
	return nil
}

// MarkSynced clears STA_UNSYNC and sets the error bounds.
func (Kernel) MarkSynced(maxError time.Duration) error {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("reading the clock's status: %w", err)
	}
	us := maxError.Microseconds()
	tx = unix.Timex{
		Modes:    unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR,
		Status:   tx.Status &^ unix.STA_UNSYNC,
		Maxerror: us,
		Esterror: us,
	}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("marking the clock synchronised: %w", err)
	}
	return nil
}

// Synced reports whether the kernel holds the clock synchronised: what
// the clock daemon marked after an NTP answer, and what it lets lapse by
// itself (16 s of accumulated error, after some 9 hours without one).
func Synced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("reading the clock's status: %w", err)
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}

// Wait returns once synced says the clock is synchronised (true), or
// after max (false, logged as a warning: the caller goes on with the clock
// it has), or when ctx ends (false). Until then it logs why it waits every
// 30 s. synced is Synced outside tests.
func Wait(ctx context.Context, log *slog.Logger, max time.Duration, why string, synced func() (bool, error)) bool {
	start := time.Now()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastLog time.Time
	for {
		ok, err := synced()
		if ok {
			if !lastLog.IsZero() {
				log.Info("clock synchronised", "waited", time.Since(start).Round(time.Second))
			}
			return true
		}
		if time.Since(lastLog) >= 30*time.Second {
			args := []any{"why", why, "clock", time.Now().UTC().Format(time.RFC3339), "waited", time.Since(start).Round(time.Second), "at_most", max}
			if err != nil {
				args = append(args, "err", err)
			}
			log.Info("waiting for a synchronised clock (NTP, see the clock daemon)", args...)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			log.Warn("going on without a synchronised clock: NTP has not answered", "waited", max, "clock", time.Now().UTC().Format(time.RFC3339), "why_it_matters", why)
			return false
		case <-tick.C:
		}
	}
}

// Service sets and keeps the clock.
type Service struct {
	Servers []string  // NTP servers, host or host:port
	Floor   time.Time // the image's source date: the clock never starts before it
	// StatePath holds the last time saved (on /perm).
	StatePath string
	System    System
	Log       *slog.Logger
	Metrics   *Metrics
	// Query asks one server (ntp.Query outside tests).
	Query func(ctx context.Context, server string, now func() time.Time) (ntp.Response, error)
	// Poll is the time between NTP rounds once synchronised (default 15m:
	// well inside the kernel's 9 hours); before that, rounds are retried
	// after 2 s, doubling up to 32 s.
	Poll time.Duration
	// SaveEvery is how often the time is saved while synchronised
	// (default 10m), besides after each synchronisation and at stop.
	SaveEvery time.Duration

	synced bool
}

// stepAbove is the offset beyond which the clock is stepped, not slewed
// (ntpd's 128 ms).
const stepAbove = 128 * time.Millisecond

// Start sets the clock to the floor when it is behind it, and returns the
// floor.
func (s *Service) Start() time.Time {
	floor := s.Floor
	if b, err := os.ReadFile(s.StatePath); err == nil {
		var saved time.Time
		if err := saved.UnmarshalText([]byte(strings.TrimSpace(string(b)))); err != nil {
			s.Log.Warn("saved time unreadable, ignored", "path", s.StatePath, "err", err)
		} else if saved.After(floor) {
			floor = saved
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		s.Log.Warn("saved time unreadable, ignored", "path", s.StatePath, "err", err)
	}
	if now := s.System.Now(); now.Before(floor) {
		if err := s.System.Step(floor); err != nil {
			s.Log.Error("cannot set the clock to its floor", "floor", floor.UTC().Format(time.RFC3339), "err", err)
		} else {
			s.Log.Info("clock set to its floor", "from", now.UTC().Format(time.RFC3339), "to", floor.UTC().Format(time.RFC3339))
		}
	}
	s.Metrics.floor.Set(float64(floor.Unix()))
	return floor
}

// Run asks NTP until ctx ends, keeping the clock set and saved; it saves
// the time once more at the end.
func (s *Service) Run(ctx context.Context) error {
	poll, save := s.Poll, s.SaveEvery
	if poll == 0 {
		poll = 15 * time.Minute
	}
	if save == 0 {
		save = 10 * time.Minute
	}
	retry := 2 * time.Second
	lastSave := s.System.Now()
	defer s.saveTime()
	for {
		wait := poll
		if err := s.round(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = retry
			retry = min(2*retry, 32*time.Second)
			if !s.synced || retry == 32*time.Second {
				s.Log.Warn("no NTP answer", "servers", strings.Join(s.Servers, ","), "err", err, "retry_in", wait)
			}
		} else {
			retry = 2 * time.Second
			lastSave = s.System.Now()
		}
		if s.synced && s.System.Now().Sub(lastSave) >= save {
			s.saveTime()
			lastSave = s.System.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// round asks every server and follows the best answer: the one whose
// error bound (half the round trip plus the server's root distance) is
// smallest.
func (s *Service) round(ctx context.Context) error {
	var best *ntp.Response
	var errs []error
	for _, srv := range s.Servers {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := s.Query(qctx, srv, s.System.Now)
		cancel()
		if err != nil {
			s.Metrics.queries.WithLabelValues("error").Inc()
			errs = append(errs, err)
			continue
		}
		s.Metrics.queries.WithLabelValues("ok").Inc()
		if best == nil || r.Delay/2+r.RootDistance < best.Delay/2+best.RootDistance {
			best = &r
		}
	}
	if best == nil {
		return errors.Join(errs...)
	}
	r := *best
	if r.Offset.Abs() > stepAbove {
		now := s.System.Now()
		if err := s.System.Step(now.Add(r.Offset)); err != nil {
			return err
		}
		s.Log.Info("clock stepped", "server", r.Server, "offset", r.Offset, "from", now.UTC().Format(time.RFC3339), "to", now.Add(r.Offset).UTC().Format(time.RFC3339))
	} else if err := s.System.Slew(r.Offset); err != nil {
		return err
	}
	if err := s.System.MarkSynced(r.Delay/2 + r.RootDistance); err != nil {
		return err
	}
	if !s.synced {
		s.Log.Info("clock synchronised", "server", r.Server, "stratum", r.Stratum, "offset", r.Offset, "delay", r.Delay)
	}
	s.synced = true
	s.Metrics.synced.Set(1)
	s.Metrics.offset.Set(r.Offset.Seconds())
	s.Metrics.stratum.Set(float64(r.Stratum))
	s.Metrics.lastSync.Set(float64(s.System.Now().Unix()))
	s.saveTime()
	return nil
}

// saveTime writes the current time to StatePath, once the clock has been
// synchronised (an unsynchronised clock is no better than the floor).
func (s *Service) saveTime() {
	if !s.synced {
		return
	}
	b, _ := s.System.Now().UTC().MarshalText()
	if err := atomicfile.WriteFile(s.StatePath, append(b, '\n'), 0o644); err != nil {
		s.Log.Error("cannot save the time", "err", err)
	}
}

// Metrics are the clock's Prometheus metrics.
type Metrics struct {
	synced, offset, stratum, lastSync, floor *metrics.Gauge
	queries                                  *metrics.CounterVec
}

// NewMetrics registers the clock's metrics on r.
func NewMetrics(r *metrics.Registry) *Metrics {
	m := &Metrics{
		synced:   metrics.NewGauge(metrics.Opts{Name: "gate_clock_synced", Help: "1 once an NTP server answered and the clock was set from it."}),
		offset:   metrics.NewGauge(metrics.Opts{Name: "gate_clock_offset_seconds", Help: "The last offset measured against NTP (before the correction)."}),
		stratum:  metrics.NewGauge(metrics.Opts{Name: "gate_clock_stratum", Help: "The stratum of the NTP server last followed."}),
		lastSync: metrics.NewGauge(metrics.Opts{Name: "gate_clock_last_sync_timestamp_seconds", Help: "When the clock was last set from NTP."}),
		floor:    metrics.NewGauge(metrics.Opts{Name: "gate_clock_floor_timestamp_seconds", Help: "The time the clock was not allowed to start before (saved on /perm, or the image's source date)."}),
		queries:  metrics.NewCounterVec(metrics.Opts{Name: "gate_clock_ntp_queries_total", Help: "NTP queries by result (ok, error)."}, []string{"result"}),
	}
	if r != nil {
		r.MustRegister(m.synced, m.offset, m.stratum, m.lastSync, m.floor, m.queries)
	}
	return m
}
