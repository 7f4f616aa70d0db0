package status

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"gate/internal/alert"
	"gate/internal/history"
)

// Service is statusd's loop: gather every Interval, serve the newest
// snapshot, add it to the history (saved every SaveEvery and at the end),
// and hand the events it implies to the alerter.
type Service struct {
	Gatherer    *Gatherer
	Watcher     *Watcher
	Alerter     *alert.Alerter // nil: no alerts section
	Server      *Server
	History     *history.History
	HistoryPath string
	Interval    time.Duration
	SaveEvery   time.Duration
	Log         *slog.Logger
}

// Step gathers once: it serves the snapshot, samples the history and
// queues the events; it returns the snapshot.
func (s *Service) Step(ctx context.Context) *Snapshot {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	snap := s.Gatherer.Gather(gctx)
	s.Server.Set(snap)
	s.History.Add(snap.Time, Sample(snap))
	dir := filepath.Join(s.Gatherer.StateRoot, "upsd")
	plans, _, _ := ReadJournals(dir, PlanJournal)
	returns, _, _ := ReadJournals(dir, ReturnJournal)
	events, err := s.Watcher.Observe(snap, plans, returns)
	if err != nil {
		s.Log.Error("status", "err", err)
	}
	if s.Alerter != nil && len(events) > 0 {
		s.Alerter.Notify(events...)
	}
	for _, e := range events {
		if s.Alerter == nil {
			s.Log.Info("event", "kind", e.Kind, "source", e.Source, "title", e.Title)
		}
	}
	return snap
}

// Run loops until ctx is done, then saves the history.
func (s *Service) Run(ctx context.Context) {
	if s.Alerter != nil {
		go s.Alerter.Run(ctx)
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-ctx.Done():
			s.save()
			return
		case <-t.C:
		}
		s.Step(ctx)
		if time.Since(lastSave) >= s.SaveEvery {
			s.save()
			lastSave = time.Now()
		}
	}
}

func (s *Service) save() {
	if s.HistoryPath == "" {
		return
	}
	if err := s.History.Save(s.HistoryPath); err != nil {
		s.Log.Error("history", "err", err)
	}
}
