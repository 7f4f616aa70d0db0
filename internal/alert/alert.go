// Package alert tells the site's admins when something happens: events
// (mains lost, the shutdown plan finished, the tunnel down, ...) pass a
// rate limit per source, which folds a flapping source's surplus into one
// digest per window; each message is queued on /perm for every channel (a
// webhook, e-mail over SMTP) and delivered oldest first, retried with
// backoff while the channel fails. The queue survives a reboot (mains lost
// usually means the gate goes down too: the messages go out once it is
// back) and is bounded (the oldest are dropped, and the next message says
// how many).
//
// Nothing here ever blocks the caller: Notify only queues.
package alert

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gate/internal/metrics"
)

// Severities.
const (
	Info     = "info"
	Warning  = "warning"
	Critical = "critical"
)

// Event is one thing that happened.
type Event struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`   // e.g. mains-lost, plan-finished, tunnel-down, digest
	Source   string    `json:"source"` // what it is about: ups, plan, vpn, dyndns, host/NAME, bastion, clock
	Severity string    `json:"severity"`
	Title    string    `json:"title"`
	Text     string    `json:"text,omitempty"`
	// Always bypasses the rate limit: for events that cannot flap (a
	// shutdown plan's steps, each once per outage).
	Always bool `json:"always,omitempty"`
	// Dropped is how many older messages the full queue dropped before
	// this one (set by the queue).
	Dropped int `json:"dropped,omitempty"`
}

// Channel delivers one message.
type Channel interface {
	Name() string
	Send(ctx context.Context, site string, e Event) error
}

// Options configure an Alerter.
type Options struct {
	Site     string // the site's name, in every message
	Channels []Channel
	Dir      string // queue files: Dir/queue-<channel>.json
	QueueMax int    // messages kept per channel (default 500)
	Limit    int    // messages per source per Window before a digest (default 5)
	Window   time.Duration
	// MinRetry and MaxRetry bound the backoff between attempts (defaults
	// 2 s and 5 min).
	MinRetry, MaxRetry time.Duration
	Log                *slog.Logger
	Now                func() time.Time
	// Registry, when set, gets the alert metrics (README: "Metrics").
	Registry *metrics.Registry
}

// Alerter is the running alert machinery.
type Alerter struct {
	o      Options
	lim    *Limiter
	queues []*Queue
	wake   []chan struct{}
	mu     sync.Mutex

	events          *metrics.CounterVec // by kind
	sent, failed    *metrics.CounterVec // by channel
	queued, dropped *metrics.GaugeVec   // by channel
}

// New opens (or creates) each channel's queue.
func New(o Options) (*Alerter, error) {
	if o.QueueMax <= 0 {
		o.QueueMax = 500
	}
	if o.MinRetry <= 0 {
		o.MinRetry = 2 * time.Second
	}
	if o.MaxRetry < o.MinRetry {
		o.MaxRetry = max(5*time.Minute, o.MinRetry)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := &Alerter{o: o, lim: NewLimiter(o.Limit, o.Window),
		events:  metrics.NewCounterVec(metrics.Opts{Name: "gate_status_events_total", Help: "Events derived from the site's state, by kind (before the rate limit)."}, []string{"kind"}),
		sent:    metrics.NewCounterVec(metrics.Opts{Name: "gate_status_alerts_sent_total", Help: "Alert messages delivered, by channel."}, []string{"channel"}),
		failed:  metrics.NewCounterVec(metrics.Opts{Name: "gate_status_alert_failures_total", Help: "Failed delivery attempts, by channel."}, []string{"channel"}),
		queued:  metrics.NewGaugeVec(metrics.Opts{Name: "gate_status_alerts_queued", Help: "Alert messages waiting, by channel."}, []string{"channel"}),
		dropped: metrics.NewGaugeVec(metrics.Opts{Name: "gate_status_alerts_dropped", Help: "Messages dropped by the full queue since the last delivery, by channel."}, []string{"channel"}),
	}
	if o.Registry != nil {
		o.Registry.MustRegister(a.events, a.sent, a.failed, a.queued, a.dropped)
	}
	for _, c := range o.Channels {
		q, err := OpenQueue(filepath.Join(o.Dir, "queue-"+c.Name()+".json"), o.QueueMax)
		if err != nil {
			return nil, err
		}
		a.queues = append(a.queues, q)
		a.wake = append(a.wake, make(chan struct{}, 1))
		a.queued.WithLabelValues(c.Name()).Set(float64(q.Len()))
	}
	return a, nil
}

// Notify passes events through the rate limit and queues what is to be
// sent on every channel. It never blocks on delivery.
func (a *Alerter) Notify(events ...Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Event
	for _, e := range events {
		a.events.WithLabelValues(e.Kind).Inc()
		out = append(out, a.lim.Admit(e)...)
	}
	out = append(out, a.lim.Due(a.o.Now())...)
	a.queue(out)
}

// Tick sends the digests whose window ended; call it now and then.
func (a *Alerter) Tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queue(a.lim.Due(a.o.Now()))
}

func (a *Alerter) queue(out []Event) {
	for _, e := range out {
		a.o.Log.Info("alert", "kind", e.Kind, "source", e.Source, "severity", e.Severity, "title", e.Title)
		for i, q := range a.queues {
			if err := q.Push(e); err != nil {
				a.o.Log.Error("alert queue", "channel", a.o.Channels[i].Name(), "err", err)
			}
			a.queued.WithLabelValues(a.o.Channels[i].Name()).Set(float64(q.Len()))
			a.dropped.WithLabelValues(a.o.Channels[i].Name()).Set(float64(q.Dropped()))
			select {
			case a.wake[i] <- struct{}{}:
			default:
			}
		}
	}
}

// Pending returns how many messages wait per channel.
func (a *Alerter) Pending() map[string]int {
	m := map[string]int{}
	for i, q := range a.queues {
		m[a.o.Channels[i].Name()] = q.Len()
	}
	return m
}

// Run delivers the queues until ctx is done: each channel on its own, its
// messages in order, a failed one retried with exponential backoff
// (jittered) before the next is tried.
func (a *Alerter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range a.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.deliver(ctx, i)
		}()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			a.Tick()
		}
	}
}

func (a *Alerter) deliver(ctx context.Context, i int) {
	c, q := a.o.Channels[i], a.queues[i]
	backoff := time.Duration(0)
	for {
		e, ok := q.Peek()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-a.wake[i]:
				continue
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.Send(sctx, a.o.Site, e)
		cancel()
		if err == nil {
			backoff = 0
			a.sent.WithLabelValues(c.Name()).Inc()
			if err := q.Pop(); err != nil {
				a.o.Log.Error("alert queue", "channel", c.Name(), "err", err)
			}
			a.queued.WithLabelValues(c.Name()).Set(float64(q.Len()))
			a.dropped.WithLabelValues(c.Name()).Set(0)
			a.o.Log.Info("alert delivered", "channel", c.Name(), "kind", e.Kind, "queued", q.Len())
			continue
		}
		if ctx.Err() != nil {
			return
		}
		a.failed.WithLabelValues(c.Name()).Inc()
		backoff = min(max(2*backoff, a.o.MinRetry), a.o.MaxRetry)
		wait := backoff/2 + rand.N(backoff/2+1)
		a.o.Log.Warn("alert delivery failed; retrying", "channel", c.Name(), "kind", e.Kind, "queued", q.Len(), "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Subject is the one-line form of a message: "[site] title".
func Subject(site string, e Event) string {
	return fmt.Sprintf("[%s] %s", site, e.Title)
}

// Body is the text form of a message.
func Body(site string, e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", e.Title)
	if e.Text != "" {
		fmt.Fprintf(&b, "%s\n\n", e.Text)
	}
	fmt.Fprintf(&b, "site: %s\nwhen: %s\nsource: %s\nkind: %s\nseverity: %s\n", site, e.Time.UTC().Format(time.RFC3339), e.Source, e.Kind, e.Severity)
	if e.Dropped > 0 {
		fmt.Fprintf(&b, "\n(%d older messages were dropped: the queue was full)\n", e.Dropped)
	}
	return b.String()
}
