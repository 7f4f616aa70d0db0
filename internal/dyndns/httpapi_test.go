package dyndns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/config"
	"gate/internal/publicip"
)

// The fakes of the HTTP-API providers share fakeZone: the records of one
// zone, the requests seen, and faults to answer instead of the API.

const (
	testToken = "tok-Zq81xL3bP0s2" // distinctive, to find it in any message
	testZone  = "example.org"
)

type fakeRec struct {
	id    string
	value string
	ttl   int
	extra map[string]any // provider-specific fields (Cloudflare's proxied)
}

// fault is a canned answer given instead of the API's to request number at
// (1-based).
type fault struct {
	at     int
	status int
	header map[string]string
	body   string
}

type fakeZone struct {
	t      *testing.T
	mu     sync.Mutex
	zone   string
	token  string
	recs   map[string]*fakeRec // "home.example.org/A"
	nextID int
	n      int
	faults []fault
	reqs   []string // "METHOD /path?query"
	writes int      // requests that changed a record
}

func newFakeZone(t *testing.T) *fakeZone {
	return &fakeZone{t: t, zone: testZone, token: testToken, recs: map[string]*fakeRec{}}
}

func recKey(fqdn, typ string) string {
	return strings.ToLower(strings.TrimSuffix(fqdn, ".")) + "/" + typ
}

// set puts a record into the zone (fqdn, type, value).
func (f *fakeZone) set(fqdn, typ, value string, ttl int) *fakeRec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.setLocked(fqdn, typ, value, ttl)
}

func (f *fakeZone) setLocked(fqdn, typ, value string, ttl int) *fakeRec {
	k := recKey(fqdn, typ)
	r := f.recs[k]
	if r == nil {
		f.nextID++
		r = &fakeRec{id: fmt.Sprintf("rec%04d", f.nextID), extra: map[string]any{}}
		f.recs[k] = r
	}
	r.value, r.ttl = value, ttl
	return r
}

func (f *fakeZone) get(fqdn, typ string) (fakeRec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[recKey(fqdn, typ)]
	if !ok {
		return fakeRec{}, false
	}
	return *r, true
}

func (f *fakeZone) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

func (f *fakeZone) count() (reqs, writes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.writes
}

func (f *fakeZone) addFault(fl fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fl)
}

// begin is called by every fake handler first, with f.mu held: it counts
// the request, checks what every provider must send, and answers a fault
// if one is due (then it returns false).
func (f *fakeZone) begin(w http.ResponseWriter, r *http.Request) bool {
	f.n++
	f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
	if ua := r.Header.Get("User-Agent"); ua != UserAgent {
		f.t.Errorf("%s %s: User-Agent %q, want the package's", r.Method, r.URL, ua)
	}
	if r.Method != http.MethodGet && r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("%s %s: Content-Type %q", r.Method, r.URL, r.Header.Get("Content-Type"))
	}
	for _, fl := range f.faults {
		if fl.at == f.n {
			for k, v := range fl.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(fl.status)
			io.WriteString(w, fl.body)
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body strictly into v.
func readJSON(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// apiSetup describes one provider for the shared tests.
type apiSetup struct {
	name string
	// fake serves the provider's API for z.
	fake func(z *fakeZone) http.Handler
	// prefix is the base URL's path (the site file's provider.server is
	// the test server's URL plus it).
	prefix string
	// provider builds the provider on base with the token.
	provider func(base, token string, c *http.Client) Provider
	// minTTL is what the provider publishes a 60s TTL with.
	minTTL int
	// unauthorized is the status the API answers a wrong token with.
	unauthorized int
	// noZone leaves provider.zone out of the site file.
	noZone bool
}

var (
	v4a = netip.MustParseAddr("198.51.100.7")
	v4b = netip.MustParseAddr("198.51.100.8")
	v6a = netip.MustParseAddr("2001:db8::7")
)

func isPermanent(err error) bool { var p *PermanentError; return errors.As(err, &p) }
func isWait(err error) bool      { var w *WaitError; return errors.As(err, &w) }

// testAPIProvider runs the cases every HTTP-API provider must pass.
func testAPIProvider(t *testing.T, s apiSetup) {
	home := Record{Name: "home.example.org", Type: "A", TTL: time.Minute}
	home6 := Record{Name: "home.example.org", Type: "AAAA", TTL: time.Minute}
	for _, tc := range []struct {
		name   string
		token  string
		before func(z *fakeZone)
		rec    Record
		addr   netip.Addr
		check  func(t *testing.T, z *fakeZone, err error)
	}{
		{name: "create when absent", rec: home, addr: v4a, check: func(t *testing.T, z *fakeZone, err error) {
			if err != nil {
				t.Fatal(err)
			}
			r, ok := z.get("home.example.org", "A")
			if !ok || r.value != v4a.String() || r.ttl != s.minTTL {
				t.Errorf("the API holds %+v (%v), want %s with TTL %d", r, ok, v4a, s.minTTL)
			}
		}},
		{name: "update when present", rec: home, addr: v4b, before: func(z *fakeZone) {
			z.set("home.example.org", "A", v4a.String(), 3600)
			z.set("other.example.org", "A", "203.0.113.1", 3600)
			z.set("home.example.org", "TXT", `"keep me"`, 3600)
		}, check: func(t *testing.T, z *fakeZone, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := z.get("home.example.org", "A"); r.value != v4b.String() {
				t.Errorf("the API holds %q, want %s", r.value, v4b)
			}
			if r, _ := z.get("other.example.org", "A"); r.value != "203.0.113.1" {
				t.Errorf("another record changed: %q", r.value)
			}
			if r, _ := z.get("home.example.org", "TXT"); r.value != `"keep me"` {
				t.Errorf("another type changed: %q", r.value)
			}
			if n := z.size(); n != 3 {
				t.Errorf("%d records, want 3 (no duplicate)", n)
			}
		}},
		{name: "AAAA", rec: home6, addr: v6a, before: func(z *fakeZone) {
			z.set("home.example.org", "A", v4a.String(), 3600)
		}, check: func(t *testing.T, z *fakeZone, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := z.get("home.example.org", "AAAA"); r.value != v6a.String() {
				t.Errorf("the API holds %q, want %s", r.value, v6a)
			}
			if r, _ := z.get("home.example.org", "A"); r.value != v4a.String() {
				t.Errorf("the A record changed: %q", r.value)
			}
		}},
		{name: "apex", rec: Record{Name: "example.org.", Type: "A", TTL: time.Hour}, addr: v4a, check: func(t *testing.T, z *fakeZone, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := z.get("example.org", "A"); r.value != v4a.String() || r.ttl != 3600 {
				t.Errorf("the apex holds %+v", r)
			}
		}},
		{name: "wrong token", token: "not-the-token", rec: home, addr: v4a, check: func(t *testing.T, z *fakeZone, err error) {
			if !isPermanent(err) {
				t.Fatalf("got %T %v, want a *PermanentError", err, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", s.unauthorized)) {
				t.Errorf("%q does not give the HTTP status", err)
			}
			if strings.Contains(err.Error(), "not-the-token") {
				t.Errorf("%q holds the token", err)
			}
		}},
		{name: "rate limited", rec: home, addr: v4a, before: func(z *fakeZone) {
			z.addFault(fault{at: 1, status: 429, header: map[string]string{"Retry-After": "17"}, body: `{"detail": "Request was throttled. Expected available in 17 seconds."}`})
		}, check: func(t *testing.T, z *fakeZone, err error) {
			var w *WaitError
			if !errors.As(err, &w) || w.After != 17*time.Second {
				t.Fatalf("got %T %v, want a *WaitError of 17s", err, err)
			}
			if !strings.Contains(err.Error(), "HTTP 429") {
				t.Errorf("%q does not give the status", err)
			}
		}},
		{name: "rate limited without Retry-After", rec: home, addr: v4a, before: func(z *fakeZone) {
			z.addFault(fault{at: 1, status: 429, body: `{}`})
		}, check: func(t *testing.T, z *fakeZone, err error) {
			var w *WaitError
			if !errors.As(err, &w) || w.After < time.Minute {
				t.Fatalf("got %T %v, want a *WaitError of at least a minute", err, err)
			}
		}},
		{name: "server error", rec: home, addr: v4a, before: func(z *fakeZone) {
			z.addFault(fault{at: 1, status: 503, body: "<html>upstream down</html>"})
		}, check: func(t *testing.T, z *fakeZone, err error) {
			if err == nil || isPermanent(err) || isWait(err) {
				t.Fatalf("got %T %v, want a plain error", err, err)
			}
			if !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "upstream down") {
				t.Errorf("%q does not say what the API answered", err)
			}
		}},
		{name: "malformed JSON", rec: home, addr: v4a, before: func(z *fakeZone) {
			z.addFault(fault{at: 1, status: 200, body: `{"result": [ {"id": `})
		}, check: func(t *testing.T, z *fakeZone, err error) {
			if err == nil || isPermanent(err) || isWait(err) || !strings.Contains(err.Error(), "malformed JSON") {
				t.Fatalf("got %T %v, want a plain error saying the JSON is malformed", err, err)
			}
		}},
		{name: "record outside the zone", rec: Record{Name: "home.example.net", Type: "A", TTL: time.Minute}, addr: v4a, check: func(t *testing.T, z *fakeZone, err error) {
			if !isPermanent(err) || !strings.Contains(err.Error(), "home.example.net") {
				t.Fatalf("got %T %v, want a *PermanentError naming the record", err, err)
			}
			if _, w := z.count(); w != 0 {
				t.Errorf("%d writes", w)
			}
		}},
		{name: "address of the other family", rec: home, addr: v6a, check: func(t *testing.T, z *fakeZone, err error) {
			if err == nil {
				t.Fatal("an IPv6 address was accepted for an A record")
			}
			if _, w := z.count(); w != 0 {
				t.Errorf("%d writes", w)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := newFakeZone(t)
			ts := httptest.NewTLSServer(s.fake(z))
			defer ts.Close()
			if tc.before != nil {
				tc.before(z)
			}
			tok := testToken
			if tc.token != "" {
				tok = tc.token
			}
			p := s.provider(ts.URL+s.prefix, tok, ts.Client())
			if p.Name() != s.name {
				t.Errorf("Name() = %q", p.Name())
			}
			err := p.Update(context.Background(), tc.rec, tc.addr)
			if err != nil {
				t.Logf("%s", err)
				if !strings.HasPrefix(err.Error(), s.name+": ") {
					t.Errorf("%q does not name the provider first", err)
				}
				if strings.Contains(err.Error(), tok) {
					t.Errorf("%q holds the token", err)
				}
			}
			tc.check(t, z, err)
		})
	}

	// Current reads what the API holds, and nothing when there is none.
	t.Run("current", func(t *testing.T) {
		z := newFakeZone(t)
		ts := httptest.NewTLSServer(s.fake(z))
		defer ts.Close()
		p := s.provider(ts.URL+s.prefix, testToken, ts.Client())
		ctx := context.Background()
		if a, err := p.Current(ctx, home); err != nil || a.IsValid() {
			t.Errorf("Current of an absent record = %v, %v", a, err)
		}
		z.set("home.example.org", "A", v4a.String(), 3600)
		z.set("home.example.org", "AAAA", v6a.String(), 3600)
		if a, err := p.Current(ctx, home); err != nil || a != v4a {
			t.Errorf("Current(A) = %v, %v", a, err)
		}
		if a, err := p.Current(ctx, home6); err != nil || a != v6a {
			t.Errorf("Current(AAAA) = %v, %v", a, err)
		}
		z.set("home.example.org", "A", "not-an-address", 3600)
		if _, err := p.Current(ctx, home); err == nil {
			t.Error("Current accepted a record that is not an address")
		}
		// An update then a read: the provider's own round trip.
		if err := p.Update(ctx, home, v4b); err != nil {
			t.Fatal(err)
		}
		if a, err := p.Current(ctx, home); err != nil || a != v4b {
			t.Errorf("Current after Update = %v, %v", a, err)
		}
		_, w := z.count()
		if w != 1 {
			t.Errorf("%d writes, want 1", w)
		}
	})

	// The updater, built from a site file by FromConfig, publishes a new
	// address once, and a wrong token blocks the record until the site
	// file changes.
	t.Run("updater from the site file", func(t *testing.T) {
		z := newFakeZone(t)
		ts := httptest.NewTLSServer(s.fake(z))
		defer ts.Close()
		newUpdater := func(token string) (*Updater, *fixedSource) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
			os.WriteFile(filepath.Join(dir, "secrets", s.name+"-token"), []byte(token+"\n"), 0o600)
			zone := "zone: example.org, "
			if s.noZone {
				zone = ""
			}
			site := fmt.Sprintf(`site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
dyndns:
  provider: {type: %s, server: "%s", %stoken: "file:%s-token"}
  records:
    - {name: home.example.org, type: A, ttl: 1h}
`, s.name, ts.URL+s.prefix, zone, s.name)
			c, err := config.Parse(filepath.Join(dir, "site.yaml"), []byte(site), "")
			if err != nil {
				t.Fatal(err)
			}
			prov, recs, _, hash, err := FromConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			if prov.Name() != s.name {
				t.Fatalf("FromConfig built %q", prov.Name())
			}
			withClient(prov, ts.Client())
			src := &fixedSource{}
			src.set(v4a.String())
			u := &Updater{
				Provider: prov, Records: recs, Sources: []publicip.Source{src}, Timeout: time.Second,
				StatePath: filepath.Join(dir, "state.json"), ConfigHash: hash,
				Log: slog.New(slog.DiscardHandler), Metrics: NewMetrics(nil),
			}
			u.Load()
			return u, src
		}
		ctx := context.Background()
		u, src := newUpdater(testToken)
		u.Tick(ctx)
		if r, _ := z.get("home.example.org", "A"); r.value != v4a.String() || r.ttl != 3600 {
			t.Fatalf("after a tick the API holds %+v; state %s", r, u.Status())
		}
		u.Tick(ctx)
		_, w := z.count()
		src.set(v4b.String())
		u.Tick(ctx)
		u.Tick(ctx)
		if r, _ := z.get("home.example.org", "A"); r.value != v4b.String() {
			t.Fatalf("after a change the API holds %+v; state %s", r, u.Status())
		}
		if _, w2 := z.count(); w2 != w+1 {
			t.Errorf("%d writes for one change, want 1", w2-w)
		}

		bad, src := newUpdater("wrong")
		src.set("198.51.100.9")
		bad.Tick(ctx)
		n, _ := z.count()
		bad.Tick(ctx)
		if n2, _ := z.count(); n2 != n {
			t.Errorf("a refused token was tried again (%d requests)", n2-n)
		}
		if !strings.Contains(bad.Status(), "blocked") || strings.Contains(bad.Status(), "wrong") {
			t.Errorf("state after a refused token: %s", bad.Status())
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 5 * time.Minute},
		{"0", time.Second},
		{"17", 17 * time.Second},
		{"79200", 22 * time.Hour},
		{"99999999999999999999", 5 * time.Minute},
		{"9999999", 24 * time.Hour},
		{"-3", 5 * time.Minute},
		{"soon", 5 * time.Minute},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Second},
	} {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		if got := retryAfter(h, now, 5*time.Minute); got != tc.want {
			t.Errorf("Retry-After %q: %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestRelName(t *testing.T) {
	for _, tc := range []struct{ name, zone, want string }{
		{"home.example.org", "example.org", "home"},
		{"Home.Example.ORG.", "example.org.", "home"},
		{"a.b.example.org", "example.org", "a.b"},
		{"example.org", "example.org", ""},
		{"home.example.net", "example.org", "!"},
		{"homeexample.org", "example.org", "!"},
		{"home.example.org", "", "!"},
	} {
		got, err := relName(tc.name, tc.zone)
		if (err != nil) != (tc.want == "!") || (err == nil && got != tc.want) {
			t.Errorf("relName(%q, %q) = %q, %v; want %q", tc.name, tc.zone, got, err, tc.want)
		}
	}
}

func TestJSONMessage(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"detail": "Invalid token."}`, "Invalid token."},
		{`[{"ttl": ["Ensure this value is greater than or equal to 3600."]}]`, "ttl: Ensure this value is greater than or equal to 3600."},
		{`{"non_field_errors": ["Another RRset with the same subdomain and type exists for this domain."]}`, "Another RRset with the same subdomain and type exists for this domain."},
		{`<html>`, ""},
		{`[[[[[]]]]]`, ""},
	} {
		if got := jsonMessage([]byte(tc.body)); got != tc.want {
			t.Errorf("jsonMessage(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

// roundTrip answers every request with one canned answer, without a
// network: the fuzz target's API.
type roundTrip struct {
	status int
	header http.Header
	body   []byte
}

func (rt roundTrip) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: rt.status, Header: rt.header, Body: io.NopCloser(bytes.NewReader(rt.body)), Request: r}, nil
}

// FuzzAPIAnswers feeds every HTTP-API provider arbitrary answers: no
// panic, and an error (never success) for an answer that cannot be one.
func FuzzAPIAnswers(f *testing.F) {
	for _, s := range []struct {
		status      int
		retry, body string
	}{
		{200, "", `{"success": true, "errors": [], "result": [{"id": "z1", "name": "example.org"}]}`},
		{200, "", `{"success": false, "errors": [{"code": 9109, "message": "Invalid access token"}]}`},
		{403, "", `{"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]}`},
		{200, "", `[{"name": "example.org", "minimum_ttl": 3600}]`},
		{200, "", `{"name": "example.org", "minimum_ttl": -1}`},
		{400, "", `[{"ttl": ["Ensure this value is greater than or equal to 3600."]}]`},
		{429, "3", `{"detail": "Request was throttled. Expected available in 3 seconds."}`},
		{401, "", `{"code": 401, "message": "The server could not verify that you authenticated", "object": "HTTPUnauthorized", "cause": "Unauthorized"}`},
		{200, "", `{"rrset_values": ["198.51.100.7"], "rrset_ttl": 300}`},
		{200, "", `{"zones": [{"id": "z", "name": "example.org"}], "meta": {"pagination": {"last_page": 2}}}`},
		{200, "", `{"records": [{"id": "r", "type": "A", "name": "home", "value": "1.2.3.4"}], "meta": {"pagination": {"last_page": 1000000}}}`},
		{422, "", `{"error": {"message": "invalid value", "code": 422}}`},
		{500, "Wed, 21 Oct 2015 07:28:00 GMT", "\x00\xff"},
		{200, "", `null`},
	} {
		f.Add(s.status, s.retry, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, retry string, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if retry != "" {
			h.Set("Retry-After", retry)
		}
		hc := &http.Client{Transport: roundTrip{status, h, body}}
		ctx := context.Background()
		rec := Record{Name: "home.example.org", Type: "A", TTL: time.Minute}
		for _, p := range []Provider{
			&Cloudflare{BaseURL: "https://api.invalid", Zone: testZone, Token: testToken, Client: hc},
			&DeSEC{BaseURL: "https://api.invalid", Token: testToken, Client: hc},
			&DeSEC{BaseURL: "https://api.invalid", Domain: testZone, Token: testToken, Client: hc},
			&Gandi{BaseURL: "https://api.invalid", Zone: testZone, Token: testToken, Client: hc},
			&Hetzner{BaseURL: "https://api.invalid", Zone: testZone, Token: testToken, Client: hc},
		} {
			err := p.Update(ctx, rec, v4a)
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("%s: error holds the token: %v", p.Name(), err)
			}
			if err == nil && (status < 200 || status > 299) {
				t.Errorf("%s: HTTP %d taken for success", p.Name(), status)
			}
			var w *WaitError
			if errors.As(err, &w) && (w.After < time.Second || w.After > 24*time.Hour) {
				t.Errorf("%s: wait %s", p.Name(), w.After)
			}
			// A valid address is always Is4 or Is6: what can go wrong is
			// an address read from an answer that was not a success.
			a, err := p.Current(ctx, rec)
			if err == nil && a.IsValid() && (!a.Is4() && !a.Is6() || status < 200 || status > 299) {
				t.Errorf("%s: HTTP %d: Current = %v", p.Name(), status, a)
			}
		}
	})
}
