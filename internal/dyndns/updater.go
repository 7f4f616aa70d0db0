package dyndns

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"gate/internal/atomicfile"
	"gate/internal/metrics"
	"gate/internal/publicip"
)

// State is what survives a reboot, on /perm.
type State struct {
	// ConfigHash identifies the provider and records configuration: a
	// blocked record is retried only once it changes.
	ConfigHash string                  `json:"config_hash"`
	Records    map[string]*RecordState `json:"records"`
}

// RecordState is one record's published state.
type RecordState struct {
	Addr      netip.Addr `json:"addr"`
	Updated   time.Time  `json:"updated"`
	Blocked   string     `json:"blocked,omitempty"` // a permanent refusal
	NextTry   time.Time  `json:"next_try,omitempty"`
	Failures  int        `json:"failures,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// Updater keeps the records on the public address.
type Updater struct {
	Provider Provider
	Records  []Record
	Sources  []publicip.Source
	Agree    string
	Timeout  time.Duration // per source
	Interval time.Duration
	// VerifyInterval is how often each published record is read back
	// from its authority (Provider.Current) and rewritten when it
	// drifted; 0 never verifies.
	VerifyInterval time.Duration
	// MaxInterval is how long an unchanged record goes without being sent
	// again (dyndns2 providers delete hosts idle for weeks); 0 never.
	MaxInterval time.Duration
	// Reload, if set, rebuilds the provider at every check with the
	// secrets as they are now and returns it with its configuration hash:
	// when the hash changed (a corrected secret file), the new provider
	// replaces the old one and every block is lifted, without a restart.
	Reload func() (Provider, string, error)
	// Wake, if set, makes the updater check the address at once (the box
	// announced a new WAN address).
	Wake <-chan struct{}
	// WakeEvery paces the checks Wake asks for: a burst of wakeBurst at
	// once, then one per WakeEvery (default 20s).
	WakeEvery  time.Duration
	StatePath  string
	ConfigHash string
	Log        *slog.Logger
	Metrics    *Metrics
	now        func() time.Time
	state      State
	reloadErr  string
}

// Metrics are the dyndns Prometheus metrics.
type Metrics struct {
	Address    *metrics.GaugeVec   // 1 for the current address, by family and address
	LastChange *metrics.Gauge      // unix time the address last changed
	LastUpdate *metrics.GaugeVec   // unix time of the last successful update, by record
	Failures   *metrics.CounterVec // by provider
	Requests   *metrics.CounterVec // update requests sent, by provider
	Drifts     *metrics.CounterVec // records found changed at their authority, by record
}

// NewMetrics makes the metrics and registers them with r.
func NewMetrics(r *metrics.Registry) *Metrics {
	m := &Metrics{
		Address:    metrics.NewGaugeVec(metrics.Opts{Name: "gate_dyndns_address_info", Help: "1 for the public address, by family."}, []string{"family", "address"}),
		LastChange: metrics.NewGauge(metrics.Opts{Name: "gate_dyndns_last_change_timestamp_seconds", Help: "When the public address last changed."}),
		LastUpdate: metrics.NewGaugeVec(metrics.Opts{Name: "gate_dyndns_last_update_timestamp_seconds", Help: "Last successful update per record."}, []string{"record"}),
		Failures:   metrics.NewCounterVec(metrics.Opts{Name: "gate_dyndns_failures_total", Help: "Failed updates per provider."}, []string{"provider"}),
		Requests:   metrics.NewCounterVec(metrics.Opts{Name: "gate_dyndns_requests_total", Help: "Update requests sent per provider."}, []string{"provider"}),
		Drifts:     metrics.NewCounterVec(metrics.Opts{Name: "gate_dyndns_drifts_total", Help: "Records found changed behind the gate's back at their authority, by record."}, []string{"record"}),
	}
	if r != nil {
		r.MustRegister(m.Address, m.LastChange, m.LastUpdate, m.Failures, m.Requests, m.Drifts)
	}
	return m
}

// Load reads the state file; a missing or unreadable one starts fresh,
// and a configuration change lifts every block.
func (u *Updater) Load() {
	u.state = State{Records: map[string]*RecordState{}}
	if b, err := os.ReadFile(u.StatePath); err == nil {
		if err := json.Unmarshal(b, &u.state); err != nil {
			u.Log.Warn("state file unreadable, starting afresh", "file", u.StatePath, "err", err)
			u.state = State{Records: map[string]*RecordState{}}
		}
	}
	if u.state.Records == nil {
		u.state.Records = map[string]*RecordState{}
	}
	if u.state.ConfigHash != u.ConfigHash {
		u.liftBlocks("site file changed: blocked record tried again")
	}
}

// liftBlocks forgets every block and pause: the configuration changed.
func (u *Updater) liftBlocks(msg string) {
	for k, rs := range u.state.Records {
		if rs.Blocked != "" {
			u.Log.Info(msg, "record", k, "reason_was", rs.Blocked)
		}
		rs.Blocked, rs.NextTry, rs.Failures = "", time.Time{}, 0
	}
	u.state.ConfigHash = u.ConfigHash
}

// reload rebuilds the provider when its secrets changed; it reports
// whether the state changed.
func (u *Updater) reload() bool {
	if u.Reload == nil {
		return false
	}
	p, hash, err := u.Reload()
	if err != nil {
		if err.Error() != u.reloadErr {
			u.reloadErr = err.Error()
			u.Log.Warn("reading the provider's secrets again", "err", err)
		}
		return false
	}
	u.reloadErr = ""
	if hash == u.ConfigHash {
		return false
	}
	u.Provider, u.ConfigHash = p, hash
	u.liftBlocks("a secret changed: blocked record tried again")
	return true
}

func (u *Updater) save() {
	b, _ := json.MarshalIndent(u.state, "", "  ")
	if err := atomicfile.WriteFile(u.StatePath, b, 0o600); err != nil {
		u.Log.Error("saving state", "file", u.StatePath, "err", err)
	}
}

func (u *Updater) clock() time.Time {
	if u.now != nil {
		return u.now()
	}
	return time.Now()
}

// Run checks the address every Interval (and at once when Wake fires),
// and verifies the records every VerifyInterval, until ctx is done. It
// verifies once at start: a record changed while the gate was off is
// rewritten.
func (u *Updater) Run(ctx context.Context) {
	u.Tick(ctx)
	u.Verify(ctx)
	t := time.NewTimer(u.Interval)
	defer t.Stop()
	var verify <-chan time.Time
	if u.VerifyInterval > 0 {
		v := time.NewTicker(u.VerifyInterval)
		defer v.Stop()
		verify = v.C
	}
	every := u.WakeEvery
	if every <= 0 {
		every = 20 * time.Second
	}
	// A NOTIFY is easy to send on the LAN: events may not make the
	// sources be asked more than a burst, then once per every.
	wakes := &bucket{tokens: wakeBurst, max: wakeBurst, every: every, at: time.Now()}
	putOff := false // a check asked by an event waits for its token
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if putOff {
				putOff = false
				wakes.take(time.Now()) // its token has come: spend it
			}
		case <-u.Wake:
			if putOff {
				continue // already due when its token comes
			}
			if wait := wakes.take(time.Now()); wait > 0 {
				putOff = true
				t.Reset(min(wait, u.Interval))
				continue
			}
			u.Log.Info("the box announced a WAN address change: checking now")
		case <-verify:
			u.Verify(ctx)
			continue
		}
		u.Tick(ctx)
		t.Reset(u.Interval)
	}
}

// wakeBurst is how many checks events may ask for at once.
const wakeBurst = 3

// bucket is a token bucket: max tokens, one more every every.
type bucket struct {
	tokens, max float64
	every       time.Duration
	at          time.Time // when tokens was last brought up to date
}

// take spends a token and returns 0, or returns how long until one is
// there.
func (b *bucket) take(now time.Time) time.Duration {
	b.tokens = min(b.max, b.tokens+float64(now.Sub(b.at))/float64(b.every))
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.every))
}

// Verify reads every published record back from its authority and
// rewrites one that drifted (logged as drift); it also sends again a
// record unchanged for MaxInterval.
func (u *Updater) Verify(ctx context.Context) {
	dirty := false
	now := u.clock()
	for _, r := range u.Records {
		rs := u.state.Records[r.Key()]
		if rs == nil || !rs.Addr.IsValid() || rs.Blocked != "" || rs.Failures > 0 {
			continue // never published, or the tick already retries it
		}
		if u.MaxInterval > 0 && now.Sub(rs.Updated) >= u.MaxInterval {
			u.Log.Info("forced refresh", "record", r.Name, "type", r.Type, "addr", rs.Addr, "unchanged_for", now.Sub(rs.Updated).Round(time.Second))
			dirty = u.send(ctx, r, rs, rs.Addr) || dirty
			continue
		}
		if u.VerifyInterval <= 0 {
			continue
		}
		held, err := u.Provider.Current(ctx, r)
		switch {
		case errors.Is(err, ErrNoLookup):
			continue
		case err != nil:
			u.Log.Warn("verifying a record at its authority", "record", r.Name, "type", r.Type, "provider", u.Provider.Name(), "err", err)
			continue
		case held == rs.Addr:
			continue
		}
		what := "nothing"
		if held.IsValid() {
			what = held.String()
		}
		u.Log.Warn("drift: the record changed behind the gate's back, rewriting it", "record", r.Name, "type", r.Type, "holds", what, "published", rs.Addr, "provider", u.Provider.Name())
		u.Metrics.Drifts.WithLabelValues(r.Key()).Inc()
		dirty = u.send(ctx, r, rs, rs.Addr) || dirty
	}
	if dirty {
		u.save()
	}
}

// Tick learns the address once and updates what needs it.
func (u *Updater) Tick(ctx context.Context) {
	reloaded := u.reload()
	byFamily := map[string]netip.Addr{}
	for _, fam := range u.families() {
		var srcs []publicip.Source
		for _, s := range u.Sources {
			if familyOf(s) == fam {
				srcs = append(srcs, s)
			}
		}
		addr, err := publicip.Agree(u.Agree, publicip.Ask(ctx, srcs, u.Timeout))
		if err != nil {
			if errors.Is(err, publicip.ErrCGNAT) {
				u.Log.Error("not publishing", "family", fam, "err", err)
			} else {
				u.Log.Warn("public address unknown", "family", fam, "err", err)
			}
			continue
		}
		byFamily[fam] = addr
	}
	dirty := false
	for _, r := range u.Records {
		fam := "ipv4"
		if r.Type == "AAAA" {
			fam = "ipv6"
		}
		addr, ok := byFamily[fam]
		if !ok {
			continue
		}
		if u.update(ctx, r, addr) {
			dirty = true
		}
	}
	if dirty || reloaded {
		u.save()
	}
}

// familyOf tells which family a source answers for.
func familyOf(s publicip.Source) string {
	switch v := s.(type) {
	case publicip.HTTP:
		if v.Family == "ipv6" {
			return "ipv6"
		}
	case publicip.Interface:
		return "ipv6"
	}
	return "ipv4"
}

func (u *Updater) families() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range u.Sources {
		if f := familyOf(s); !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// update publishes addr for r if needed; it reports whether the state
// changed.
func (u *Updater) update(ctx context.Context, r Record, addr netip.Addr) bool {
	now := u.clock()
	rs := u.state.Records[r.Key()]
	if rs == nil {
		rs = &RecordState{}
		u.state.Records[r.Key()] = rs
	}
	if rs.Addr == addr && rs.Blocked == "" && rs.Failures == 0 {
		return false // published already (possibly before a reboot)
	}
	if rs.Blocked != "" {
		return false
	}
	if now.Before(rs.NextTry) {
		return false
	}
	if rs.Addr != addr && rs.Addr.IsValid() {
		u.Log.Info("public address changed", "record", r.Name, "type", r.Type, "from", rs.Addr, "to", addr)
	}
	return u.send(ctx, r, rs, addr)
}

// send publishes addr for r and records the outcome in rs; it reports
// whether the state changed.
func (u *Updater) send(ctx context.Context, r Record, rs *RecordState, addr netip.Addr) bool {
	now := u.clock()
	fam := "ipv4"
	if addr.Is6() {
		fam = "ipv6"
	}
	u.Metrics.Address.Reset()
	u.Metrics.Address.WithLabelValues(fam, addr.String()).Set(1)
	u.Metrics.Requests.WithLabelValues(u.Provider.Name()).Inc()
	err := u.Provider.Update(ctx, r, addr)
	var perm *PermanentError
	var wait *WaitError
	switch {
	case err == nil:
		if rs.Addr != addr {
			u.Metrics.LastChange.Set(float64(now.Unix()))
		}
		rs.Addr, rs.Updated, rs.Failures, rs.NextTry, rs.LastError = addr, now, 0, time.Time{}, ""
		u.Metrics.LastUpdate.WithLabelValues(r.Key()).Set(float64(now.Unix()))
		u.Log.Info("record updated", "record", r.Name, "type", r.Type, "addr", addr, "provider", u.Provider.Name())
		return true
	case errors.As(err, &perm):
		rs.Blocked, rs.LastError = perm.Reason, perm.Reason
		u.Log.Error("record blocked until the site file changes", "record", r.Name, "type", r.Type, "provider", u.Provider.Name(), "reason", perm.Reason)
	case errors.As(err, &wait):
		rs.Failures++
		rs.NextTry = now.Add(wait.After + jitter(wait.After/10))
		rs.LastError = wait.Reason
		u.Log.Warn("provider asks to wait", "record", r.Name, "until", rs.NextTry.Format(time.RFC3339), "reason", wait.Reason)
	default:
		rs.Failures++
		back := Backoff(rs.Failures)
		rs.NextTry = now.Add(back)
		rs.LastError = err.Error()
		u.Log.Warn("update failed", "record", r.Name, "type", r.Type, "provider", u.Provider.Name(), "retry_in", back.Round(time.Second), "err", err)
	}
	u.Metrics.Failures.WithLabelValues(u.Provider.Name()).Inc()
	return true
}

// Backoff is the wait after n consecutive failures: 30 s doubling up to an
// hour, with up to 20 % jitter.
func Backoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return d + jitter(d/5)
}

func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(max)))
}

// Status summarizes the state for logs and tests.
func (u *Updater) Status() string {
	b, _ := json.Marshal(u.state)
	return string(b)
}
