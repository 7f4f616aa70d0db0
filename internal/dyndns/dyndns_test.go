package dyndns

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/internal/publicip"
)

// scripted is a dyndns2 server answering from a script, recording requests.
type scripted struct {
	mu      sync.Mutex
	replies []string
	reqs    []*http.Request
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	reply := "good"
	if len(s.replies) > 0 {
		reply, s.replies = s.replies[0], s.replies[1:]
	}
	if user, pw, ok := r.BasicAuth(); !ok || user != "u" || pw != "p" {
		reply = "badauth"
	}
	w.Write([]byte(reply + " " + r.URL.Query().Get("myip") + "\n"))
}

func (s *scripted) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.reqs) }

func TestDynDNS2Replies(t *testing.T) {
	for _, tc := range []struct {
		reply string
		check func(error) bool
	}{
		{"good", func(e error) bool { return e == nil }},
		{"nochg", func(e error) bool { return e == nil }},
		{"badauth", func(e error) bool { var p *PermanentError; return errors.As(e, &p) }},
		{"nohost", func(e error) bool { var p *PermanentError; return errors.As(e, &p) }},
		{"notfqdn", func(e error) bool { var p *PermanentError; return errors.As(e, &p) }},
		{"abuse", func(e error) bool { var p *PermanentError; return errors.As(e, &p) }},
		{"badagent", func(e error) bool { var p *PermanentError; return errors.As(e, &p) }},
		{"911", func(e error) bool { var w *WaitError; return errors.As(e, &w) && w.After >= 10*time.Minute }},
		{"dnserr", func(e error) bool { var w *WaitError; return errors.As(e, &w) && w.After >= 10*time.Minute }},
		{"<html>oops", func(e error) bool {
			var p *PermanentError
			var w *WaitError
			return e != nil && !errors.As(e, &p) && !errors.As(e, &w)
		}},
	} {
		srv := &scripted{replies: []string{tc.reply}}
		ts := httptest.NewTLSServer(srv)
		p := &DynDNS2{URL: ts.URL, User: "u", Password: "p", UserAgent: UserAgent, Client: ts.Client()}
		err := p.Update(context.Background(), Record{Name: "home.example.org", Type: "A"}, netip.MustParseAddr("198.51.100.7"))
		if !tc.check(err) {
			t.Errorf("reply %q: got %v", tc.reply, err)
		}
		r := srv.reqs[0]
		if r.URL.Path != "/nic/update" || r.URL.Query().Get("hostname") != "home.example.org" || r.URL.Query().Get("myip") != "198.51.100.7" || r.Header.Get("User-Agent") != UserAgent {
			t.Errorf("request %s %v", r.URL, r.Header)
		}
		ts.Close()
	}
}

type fixedSource struct {
	mu   sync.Mutex
	addr netip.Addr
}

func (f *fixedSource) Name() string { return "fixed" }
func (f *fixedSource) Lookup(context.Context) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr, nil
}
func (f *fixedSource) set(a string) { f.mu.Lock(); f.addr = netip.MustParseAddr(a); f.mu.Unlock() }

func TestUpdaterRules(t *testing.T) {
	srv := &scripted{}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	src := &fixedSource{}
	src.set("198.51.100.7")
	now := time.Unix(1_800_000_000, 0)
	newUpdater := func(hash string) *Updater {
		u := &Updater{
			Provider: &DynDNS2{URL: ts.URL, User: "u", Password: "p", UserAgent: UserAgent, Client: ts.Client()},
			Records:  []Record{{Name: "home.example.org", Type: "A", TTL: time.Minute}},
			Sources:  []publicip.Source{src}, Timeout: time.Second, StatePath: filepath.Join(dir, "state.json"),
			ConfigHash: hash, Log: slog.New(slog.DiscardHandler), Metrics: NewMetrics(nil),
			now: func() time.Time { return now },
		}
		u.Load()
		return u
	}
	ctx := context.Background()
	u := newUpdater("h1")
	u.Tick(ctx)
	u.Tick(ctx)
	if n := srv.count(); n != 1 {
		t.Fatalf("%d requests for one address, want 1", n)
	}
	// A restart (reboot) does not re-send.
	u = newUpdater("h1")
	u.Tick(ctx)
	if n := srv.count(); n != 1 {
		t.Fatalf("restart re-sent: %d requests", n)
	}
	// A new address is sent once.
	src.set("198.51.100.8")
	u.Tick(ctx)
	u.Tick(ctx)
	if n := srv.count(); n != 2 {
		t.Fatalf("%d requests after a change, want 2", n)
	}
	// 911: nothing before ten minutes, then one try.
	srv.replies = []string{"911"}
	src.set("198.51.100.9")
	u.Tick(ctx)
	for i := 0; i < 5; i++ {
		now = now.Add(time.Minute)
		u.Tick(ctx)
	}
	if n := srv.count(); n != 3 {
		t.Fatalf("%d requests within 5 minutes of a 911, want 3", n)
	}
	now = now.Add(7 * time.Minute)
	u.Tick(ctx)
	if n := srv.count(); n != 4 {
		t.Fatalf("%d requests after the 911 wait, want 4", n)
	}
	// badauth: blocked, even across a restart, until the configuration changes.
	srv.replies = []string{"badauth"}
	src.set("198.51.100.10")
	u.Tick(ctx)
	for i := 0; i < 3; i++ {
		now = now.Add(time.Hour)
		u.Tick(ctx)
	}
	u = newUpdater("h1")
	u.Tick(ctx)
	if n := srv.count(); n != 5 {
		t.Fatalf("%d requests after badauth, want 5 (no retry)", n)
	}
	if !strings.Contains(u.Status(), "badauth") {
		t.Errorf("block reason not kept: %s", u.Status())
	}
	u = newUpdater("h2") // the site file (or the password) changed
	u.Tick(ctx)
	if n := srv.count(); n != 6 {
		t.Fatalf("%d requests after a configuration change, want 6", n)
	}
}

func TestBackoff(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 12; n++ {
		b := Backoff(n)
		if b < 30*time.Second || b > 72*time.Minute {
			t.Errorf("Backoff(%d) = %s", n, b)
		}
		if n <= 6 && b < prev/2 {
			t.Errorf("Backoff(%d) = %s shrank from %s", n, b, prev)
		}
		prev = b
	}
}

func TestCheckAndAgree(t *testing.T) {
	for a, ok := range map[string]bool{"198.51.100.7": true, "2001:db8::1": true, "100.64.1.2": false, "192.168.1.5": false, "10.0.0.1": false, "127.0.0.1": false, "fe80::1": false} {
		if err := publicip.Check(netip.MustParseAddr(a)); (err == nil) != ok {
			t.Errorf("Check(%s) = %v", a, err)
		}
	}
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	res := []publicip.Result{{Source: "x", Addr: a}, {Source: "y", Addr: b}, {Source: "z", Addr: b}}
	if got, _ := publicip.Agree("first", res); got != a {
		t.Errorf("first: %s", got)
	}
	if got, _ := publicip.Agree("majority", res); got != b {
		t.Errorf("majority: %s", got)
	}
	if _, err := publicip.Agree("all", res); err == nil {
		t.Error("all: disagreement accepted")
	}
	cg := []publicip.Result{{Source: "upnp", Err: publicip.Check(netip.MustParseAddr("100.64.0.9"))}, {Source: "y", Addr: b}}
	if _, err := publicip.Agree("first", cg); !errors.Is(err, publicip.ErrCGNAT) {
		t.Errorf("CGNAT not reported: %v", err)
	}
}

// withClient makes p send with hc (a test server's client, which trusts
// its certificate).
func withClient(p Provider, hc *http.Client) {
	switch p := p.(type) {
	case *DynDNS2:
		p.Client = hc
	case *Cloudflare:
		p.Client = hc
	case *DeSEC:
		p.Client = hc
	case *Gandi:
		p.Client = hc
	case *Hetzner:
		p.Client = hc
	}
}
