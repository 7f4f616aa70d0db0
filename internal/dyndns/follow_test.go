package dyndns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/config"
	"gate/internal/publicip"
)

// heldProvider is an authority whose record the test changes behind the
// updater's back; it counts updates.
type heldProvider struct {
	mu      sync.Mutex
	held    netip.Addr
	lookErr error
	updates int
	refuse  bool // answer every update with a permanent refusal
}

func (p *heldProvider) Name() string { return "held" }
func (p *heldProvider) Update(_ context.Context, _ Record, a netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.updates++
	if p.refuse {
		return &PermanentError{Reason: "badauth"}
	}
	p.held = a
	return nil
}
func (p *heldProvider) Current(context.Context, Record) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held, p.lookErr
}

func newHeldUpdater(t *testing.T, p Provider, logs *bytes.Buffer, now *time.Time) *Updater {
	src := &fixedSource{}
	src.set("198.51.100.7")
	u := &Updater{
		Provider: p, Records: []Record{{Name: "home.example.org", Type: "A", TTL: time.Minute}},
		Sources: []publicip.Source{src}, Timeout: time.Second, StatePath: filepath.Join(t.TempDir(), "state.json"),
		VerifyInterval: 10 * time.Minute, MaxInterval: 25 * 24 * time.Hour,
		ConfigHash: "h1", Log: slog.New(slog.NewTextHandler(logs, nil)), Metrics: NewMetrics(nil),
		now: func() time.Time { return *now },
	}
	u.Load()
	return u
}

// TestVerifyDrift: a record changed or deleted at its authority is
// rewritten at the next verification, once, and logged as drift; one that
// holds the published address, or a provider without lookup, costs no
// update; a record unchanged for MaxInterval is sent again.
func TestVerifyDrift(t *testing.T) {
	pub := netip.MustParseAddr("198.51.100.7")
	for _, tc := range []struct {
		name      string
		held      string // what the authority holds at verification ("": nothing)
		lookErr   error
		after     time.Duration // between publishing and verifying
		updates   int           // updates at verification
		log       string
		forbidLog string
	}{
		{name: "in place", held: "198.51.100.7", forbidLog: "drift"},
		{name: "changed behind our back", held: "203.0.113.66", updates: 1, log: "drift"},
		{name: "deleted", held: "", updates: 1, log: "holds=nothing"},
		{name: "no lookup (dyndns2)", held: "203.0.113.66", lookErr: ErrNoLookup, forbidLog: "drift"},
		{name: "lookup fails", held: "203.0.113.66", lookErr: errors.New("timeout"), log: "verifying a record", forbidLog: "drift"},
		{name: "forced refresh after max_interval", held: "198.51.100.7", after: 25*24*time.Hour + time.Minute, updates: 1, log: "forced refresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			now := time.Unix(1_800_000_000, 0)
			p := &heldProvider{}
			u := newHeldUpdater(t, p, &logs, &now)
			ctx := context.Background()
			u.Tick(ctx)
			if p.updates != 1 || p.held != pub {
				t.Fatalf("first tick: %d updates, held %s", p.updates, p.held)
			}
			u.Verify(ctx)
			if p.updates != 1 {
				t.Fatalf("verifying an intact record updated it")
			}
			p.mu.Lock()
			p.held, p.lookErr = netip.Addr{}, tc.lookErr
			if tc.held != "" {
				p.held = netip.MustParseAddr(tc.held)
			}
			p.mu.Unlock()
			now = now.Add(tc.after)
			u.Verify(ctx)
			if got := p.updates - 1; got != tc.updates {
				t.Errorf("%d updates at verification, want %d\n%s", got, tc.updates, logs.String())
			}
			if tc.updates > 0 && p.held != pub {
				t.Errorf("the authority holds %s after the rewrite", p.held)
			}
			if tc.log != "" && !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, logs.String())
			}
			if tc.forbidLog != "" && strings.Contains(logs.String(), tc.forbidLog) {
				t.Errorf("log has %q:\n%s", tc.forbidLog, logs.String())
			}
			// The address did not change: ticks send nothing more.
			u.Tick(ctx)
			if got := p.updates - 1; got != tc.updates {
				t.Errorf("a tick after verification sent again (%d updates)", got)
			}
		})
	}
}

// TestReloadLiftsBlock: a corrected secret (a new hash from Reload) lifts
// the block and the record is sent at the next tick, without a restart;
// an unchanged secret keeps it blocked.
func TestReloadLiftsBlock(t *testing.T) {
	var logs bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	bad := &heldProvider{refuse: true}
	u := newHeldUpdater(t, bad, &logs, &now)
	good := &heldProvider{}
	hash := "h1"
	u.Reload = func() (Provider, string, error) {
		if hash == "h1" {
			return bad, hash, nil
		}
		return good, hash, nil
	}
	ctx := context.Background()
	u.Tick(ctx)
	u.Tick(ctx)
	if bad.updates != 1 || !strings.Contains(u.Status(), "blocked") {
		t.Fatalf("a refusal: %d updates, state %s", bad.updates, u.Status())
	}
	hash = "h2" // the secret file was corrected
	u.Tick(ctx)
	if good.updates != 1 || strings.Contains(u.Status(), "blocked") {
		t.Fatalf("after the secret changed: %d updates, state %s\n%s", good.updates, u.Status(), logs.String())
	}
	if !strings.Contains(logs.String(), "a secret changed") {
		t.Errorf("the lifted block is not logged:\n%s", logs.String())
	}
	// The new hash is kept: a restart does not lift anything again.
	b, _ := os.ReadFile(u.StatePath)
	if !strings.Contains(string(b), `"config_hash": "h2"`) {
		t.Errorf("state file: %s", b)
	}
}

// TestSecretFileChangeLiftsBlock: the same through FromConfig, with a
// secret file rewritten while the updater runs.
func TestSecretFileChangeLiftsBlock(t *testing.T) {
	srv := &scripted{}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	pwFile := filepath.Join(dir, "secrets", "dyndns-password")
	os.WriteFile(pwFile, []byte("wrong\n"), 0o600)
	c, err := config.Parse(filepath.Join(dir, "site.yaml"), []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
dyndns:
  provider: {type: dyndns2, server: %q, username: u, password: "file:dyndns-password"}
  records: [{name: home.example.org}]
`, ts.URL)), filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	build := func() (Provider, string, error) {
		p, _, _, h, err := FromConfig(c)
		if err == nil {
			withClient(p, ts.Client())
		}
		return p, h, err
	}
	p, h, err := build()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	u := newHeldUpdater(t, p, &logs, &now)
	u.ConfigHash, u.Reload = h, build
	u.Load()
	ctx := context.Background()
	u.Tick(ctx)
	u.Tick(ctx)
	if n := srv.count(); n != 1 || !strings.Contains(u.Status(), "blocked") {
		t.Fatalf("wrong password: %d requests, state %s", n, u.Status())
	}
	os.WriteFile(pwFile, []byte("p\n"), 0o600)
	u.Tick(ctx)
	if n := srv.count(); n != 2 || strings.Contains(u.Status(), "blocked") {
		t.Fatalf("corrected password: %d requests, state %s\n%s", n, u.Status(), logs.String())
	}
}

// TestPresetWithServer: a preset with a server keeps the preset's path and
// query (OVH's system=dyndns), as ddclient does.
func TestPresetWithServer(t *testing.T) {
	for _, tc := range []struct{ preset, server, want string }{
		{"ovh", "", "https://www.ovh.com/nic/update?system=dyndns"},
		{"ovh", "https://dns.eu.ovhapis.com", "https://dns.eu.ovhapis.com/nic/update?system=dyndns"},
		{"ovh", "https://dns.eu.ovhapis.com/", "https://dns.eu.ovhapis.com/nic/update?system=dyndns"},
		{"ovh", "https://proxy.example:8443/ovh/nic/update?x=1", "https://proxy.example:8443/ovh/nic/update?system=dyndns&x=1"},
		{"noip", "https://other.example", "https://other.example/nic/update"},
		{"", "https://dyn.example/nic/update?a=b", "https://dyn.example/nic/update?a=b"},
	} {
		got, err := presetURL(tc.preset, tc.server)
		if err != nil || got != tc.want {
			t.Errorf("presetURL(%q, %q) = %q, %v; want %q", tc.preset, tc.server, got, err, tc.want)
		}
	}

	// End to end, against a recording dyndns2 server.
	srv := &scripted{}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	p, recs := dyndns2FromSite(t, ts, "preset: ovh, ")
	if err := p.Update(context.Background(), recs[0], netip.MustParseAddr("198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	r := srv.reqs[0]
	if q := r.URL.Query(); r.URL.Path != "/nic/update" || q.Get("system") != "dyndns" || q.Get("hostname") != "home.example.org" || q.Get("myip") != "198.51.100.7" {
		t.Errorf("request %s", r.URL)
	}
}

// TestUserAgent: the User-Agent names this project's program and its
// build, not another project's with a fixed version.
func TestUserAgent(t *testing.T) {
	if !strings.HasPrefix(UserAgent, "gate-dyndns/"+BuildVersion()+" ") || strings.Contains(UserAgent, "gokrazy") || strings.Contains(UserAgent, "/1.0 ") {
		t.Errorf("User-Agent %q", UserAgent)
	}
	for _, tc := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "v1.4.2"}}, "v1.4.2"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "5f61f5f0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}}}, "5f61f5f01234-dirty"},
		{debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "bbfedc2"}}}, "bbfedc2"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
	} {
		if got := buildVersion(&tc.bi); got != tc.want {
			t.Errorf("buildVersion(%+v) = %q, want %q", tc.bi, got, tc.want)
		}
	}
	// And it is what reaches a provider.
	srv := &scripted{}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	p, recs := dyndns2FromSite(t, ts, "")
	p.Update(context.Background(), recs[0], netip.MustParseAddr("198.51.100.7"))
	if got := srv.reqs[0].Header.Get("User-Agent"); got != UserAgent {
		t.Errorf("sent User-Agent %q", got)
	}
}

// TestCredentialsStayOnHTTPS: a provider that sends a password or a token
// refuses an http:// URL before sending anything, refuses a redirect to
// http, and drops its credentials on a redirect to another host.
func TestCredentialsStayOnHTTPS(t *testing.T) {
	type seen struct {
		mu  sync.Mutex
		hdr []http.Header
	}
	var other seen
	elsewhere := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.mu.Lock()
		other.hdr = append(other.hdr, r.Header.Clone())
		other.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer elsewhere.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request reached the http:// server: %s %v", r.URL, r.Header)
	}))
	defer plain.Close()
	var target string
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusFound)
	}))
	defer redirector.Close()
	hc := redirector.Client()
	rec := Record{Name: "home.example.org", Type: "A", TTL: time.Minute}
	addr := netip.MustParseAddr("198.51.100.7")
	providers := func(base string) []Provider {
		return []Provider{
			&DynDNS2{URL: base, User: "u", Password: testToken, UserAgent: UserAgent, Client: hc},
			&Cloudflare{BaseURL: base, Zone: testZone, Token: testToken, Client: hc},
			&DeSEC{BaseURL: base, Domain: testZone, Token: testToken, Client: hc},
			&Gandi{BaseURL: base, Zone: testZone, Token: testToken, Client: hc},
			&Hetzner{BaseURL: base, Zone: testZone, Token: testToken, Client: hc},
		}
	}
	ctx := context.Background()
	for _, p := range providers(plain.URL) {
		err := p.Update(ctx, rec, addr)
		var perm *PermanentError
		if !errors.As(err, &perm) || !strings.Contains(err.Error(), "https") {
			t.Errorf("%s over http://: %v, want a refusal naming https", p.Name(), err)
		}
	}
	target = plain.URL
	for _, p := range providers(redirector.URL) {
		if err := p.Update(ctx, rec, addr); err == nil {
			t.Errorf("%s followed a redirect to http://", p.Name())
		}
	}
	target = elsewhere.URL // same address, another port: another server
	for _, p := range providers(redirector.URL) {
		p.Update(ctx, rec, addr)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if len(other.hdr) == 0 {
		t.Fatal("no redirect was followed")
	}
	for _, h := range other.hdr {
		for k, v := range h {
			if k == "Authorization" || k == "Auth-Api-Token" || strings.Contains(strings.Join(v, " "), testToken) {
				t.Errorf("credentials forwarded to another host: %s: %v", k, v)
			}
		}
	}
}

// dyndns2FromSite is the dyndns2 provider FromConfig builds from a site
// file whose server is ts (password "p"), with more provider fields
// (e.g. "preset: ovh, "), sending with ts's client.
func dyndns2FromSite(t *testing.T, ts *httptest.Server, fields string) (Provider, []Record) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("p"), 0o600)
	c, err := config.Parse(filepath.Join(dir, "site.yaml"), []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
dyndns:
  provider: {type: dyndns2, %sserver: %q, username: u, password: "file:pw"}
  records: [{name: home.example.org}]
`, fields, ts.URL)), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, recs, _, _, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	withClient(p, ts.Client())
	return p, recs
}

// countingSource counts lookups.
type countingSource struct {
	fixedSource
	mu sync.Mutex
	n  int
}

func (c *countingSource) Lookup(ctx context.Context) (netip.Addr, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.fixedSource.Lookup(ctx)
}

// TestWakeGap: a flood of wake-ups (forged NOTIFYs on the LAN) asks the
// sources at most once per WakeGap; one wake-up after a quiet spell is
// acted on at once.
func TestWakeGap(t *testing.T) {
	src := &countingSource{}
	src.set("198.51.100.7")
	wake := make(chan struct{}, 1)
	u := &Updater{
		Provider: &heldProvider{}, Records: []Record{{Name: "home.example.org", Type: "A", TTL: time.Minute}},
		Sources: []publicip.Source{src}, Timeout: time.Second, Interval: time.Hour, StatePath: filepath.Join(t.TempDir(), "state.json"),
		Wake: wake, WakeGap: 300 * time.Millisecond, Log: slog.New(slog.DiscardHandler), Metrics: NewMetrics(nil),
	}
	u.Load()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	lookups := func() int { src.mu.Lock(); defer src.mu.Unlock(); return src.n }
	for i := 0; lookups() == 0 && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond { // about 1000 wake-ups
		select {
		case wake <- struct{}{}:
		default:
		}
		time.Sleep(time.Millisecond)
	}
	flood := lookups() - 1
	time.Sleep(500 * time.Millisecond) // quiet: the last put-off check has run
	before := lookups()
	wake <- struct{}{}
	for i := 0; lookups() == before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if flood < 1 || flood > 6 {
		t.Errorf("a 1.2 s flood of wake-ups asked the sources %d times, want 1 to 6 (one per 300 ms gap)", flood)
	}
	if lookups() != before+1 {
		t.Errorf("a wake-up after a quiet spell was not acted on")
	}
}
