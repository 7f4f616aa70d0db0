package dyndns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// desecFake serves the parts of the deSEC API the provider uses, as its
// documentation gives them: Authorization: Token; GET /domains/?owns_qname=
// and GET /domains/{name}/ (with minimum_ttl); the bulk PUT
// /domains/{name}/rrsets/ (create or replace; an RRset is subname + type;
// 400 with a list of per-RRset error objects); GET
// /domains/{name}/rrsets/{subname}/{type}/ ("@" for the apex; 404 when
// absent); errors as {"detail": ...}.
type desecFake struct {
	*fakeZone
	minTTL int
}

func (f *desecFake) domain() map[string]any {
	return map[string]any{"name": f.zone, "minimum_ttl": f.minTTL, "created": "2019-09-18T16:32:16.510368Z", "published": "2019-09-18T16:32:16.510368Z", "touched": "2019-09-18T16:32:16.510368Z"}
}

func (f *desecFake) rrset(sub, typ string, r *fakeRec) map[string]any {
	name := f.zone + "."
	if sub != "" {
		name = sub + "." + name
	}
	return map[string]any{"created": "2019-09-18T16:32:16.510368Z", "domain": f.zone, "subname": sub, "name": name, "type": typ, "records": []string{r.value}, "ttl": r.ttl, "touched": "2020-04-06T09:24:09.987436Z"}
}

func (f *desecFake) fqdn(sub string) string {
	if sub == "" {
		return f.zone
	}
	return sub + "." + f.zone
}

func (f *desecFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.begin(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "Token "+f.token {
		writeJSON(w, 401, map[string]string{"detail": "Invalid token."})
		return
	}
	notFound := func() { writeJSON(w, 404, map[string]string{"detail": "Not found."}) }
	p, ok := strings.CutPrefix(r.URL.Path, "/api/v1/domains/")
	if !ok {
		notFound()
		return
	}
	parts := strings.Split(p, "/")
	switch {
	case r.Method == http.MethodGet && p == "":
		// Listing domains; owns_qname filters to the responsible one.
		q := r.URL.Query().Get("owns_qname")
		ds := []any{}
		if q == "" || q == f.zone || strings.HasSuffix(q, "."+f.zone) {
			ds = append(ds, f.domain())
		}
		writeJSON(w, 200, ds)
	case parts[0] != f.zone:
		notFound()
	case r.Method == http.MethodGet && len(parts) == 2 && parts[1] == "":
		writeJSON(w, 200, f.domain())
	case r.Method == http.MethodPut && len(parts) == 3 && parts[1] == "rrsets" && parts[2] == "":
		var bulk []struct {
			Subname *string  `json:"subname"`
			Type    string   `json:"type"`
			TTL     *int     `json:"ttl"`
			Records []string `json:"records"`
		}
		if err := readJSON(r, &bulk); err != nil {
			writeJSON(w, 400, map[string]any{"non_field_errors": []string{"Invalid data. " + err.Error()}})
			return
		}
		errs, bad := make([]map[string]any, len(bulk)), false
		for i, rr := range bulk {
			errs[i] = map[string]any{}
			switch {
			case rr.TTL == nil:
				errs[i]["ttl"] = []string{"This field is required."}
			case *rr.TTL < f.minTTL:
				errs[i]["ttl"] = []string{fmt.Sprintf("Ensure this value is greater than or equal to %d.", f.minTTL)}
			}
			if rr.Type != "A" && rr.Type != "AAAA" {
				errs[i]["type"] = []string{"unsupported in this fake"}
			}
			for _, v := range rr.Records {
				if a, err := netip.ParseAddr(v); err != nil || (rr.Type == "A") != a.Is4() {
					errs[i]["records"] = []string{"Record content malformed: " + v}
				}
			}
			if rr.Subname != nil && strings.HasSuffix(*rr.Subname, f.zone) {
				errs[i]["subname"] = []string{"a subname, not a full name"}
			}
			bad = bad || len(errs[i]) > 0
		}
		if bad {
			writeJSON(w, 400, errs)
			return
		}
		out := []any{}
		for _, rr := range bulk {
			sub := ""
			if rr.Subname != nil {
				sub = *rr.Subname
			}
			if len(rr.Records) == 0 {
				delete(f.recs, recKey(f.fqdn(sub), rr.Type))
				continue
			}
			f.writes++
			out = append(out, f.rrset(sub, rr.Type, f.setLocked(f.fqdn(sub), rr.Type, rr.Records[0], *rr.TTL)))
		}
		writeJSON(w, 200, out)
	case r.Method == http.MethodGet && len(parts) == 5 && parts[1] == "rrsets" && parts[4] == "":
		sub := parts[2]
		if sub == "@" {
			sub = ""
		}
		rec, ok := f.recs[recKey(f.fqdn(sub), parts[3])]
		if !ok {
			notFound()
			return
		}
		writeJSON(w, 200, f.rrset(sub, parts[3], rec))
	default:
		writeJSON(w, 405, map[string]string{"detail": fmt.Sprintf("Method \"%s\" not allowed.", r.Method)})
	}
}

func desecSetup() apiSetup {
	return apiSetup{
		name: "desec",
		fake: func(z *fakeZone) http.Handler { return &desecFake{fakeZone: z, minTTL: 3600} },
		provider: func(base, token string, c *http.Client) Provider {
			return &DeSEC{BaseURL: base, Domain: testZone, Token: token, Client: c}
		},
		prefix:       "/api/v1",
		minTTL:       3600,
		unauthorized: 401,
	}
}

func TestDeSEC(t *testing.T) { testAPIProvider(t, desecSetup()) }

// Without a zone in the site file, deSEC says which domain holds the name.
func TestDeSECDerivedDomain(t *testing.T) {
	s := desecSetup()
	s.provider = func(base, token string, c *http.Client) Provider {
		return &DeSEC{BaseURL: base, Token: token, Client: c}
	}
	s.noZone = true
	testAPIProvider(t, s)
}

func TestDeSECSpecifics(t *testing.T) {
	ctx := context.Background()
	start := func(t *testing.T, minTTL int) (*desecFake, *DeSEC) {
		f := &desecFake{fakeZone: newFakeZone(t), minTTL: minTTL}
		ts := httptest.NewTLSServer(f)
		t.Cleanup(ts.Close)
		return f, &DeSEC{BaseURL: ts.URL + "/api/v1", Token: testToken, Client: ts.Client()}
	}

	t.Run("the domain's own minimum TTL", func(t *testing.T) {
		f, p := start(t, 60)
		if err := p.Update(ctx, Record{Name: "a.b.example.org", Type: "A", TTL: time.Minute}, v4a); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get("a.b.example.org", "A"); r.ttl != 60 || r.value != v4a.String() {
			t.Errorf("holds %+v, want TTL 60 (the domain's minimum)", r)
		}
		// Asked once per record.
		p.Update(ctx, Record{Name: "a.b.example.org", Type: "A", TTL: time.Minute}, v4b)
		if n := strings.Count(strings.Join(f.reqs, "\n"), "owns_qname"); n != 1 {
			t.Errorf("%d domain lookups: %v", n, f.reqs)
		}
	})

	t.Run("no domain holds the name", func(t *testing.T) {
		_, p := start(t, 3600)
		err := p.Update(ctx, Record{Name: "home.example.net", Type: "A", TTL: time.Hour}, v4a)
		if !isPermanent(err) || !strings.Contains(err.Error(), "home.example.net") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("an unknown domain in the site file", func(t *testing.T) {
		_, p := start(t, 3600)
		p.Domain = "example.net"
		err := p.Update(ctx, Record{Name: "home.example.net", Type: "A", TTL: time.Hour}, v4a)
		if !isPermanent(err) || !strings.Contains(err.Error(), "HTTP 404") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("a refused TTL is permanent, with deSEC's words", func(t *testing.T) {
		f, p := start(t, 3600)
		f.addFault(fault{at: 2, status: 400, body: `[{"ttl": ["Ensure this value is greater than or equal to 3600."]}]`})
		err := p.Update(ctx, Record{Name: "home.example.org", Type: "A", TTL: time.Hour}, v4a)
		want := "desec: update home.example.org A: HTTP 400: ttl: Ensure this value is greater than or equal to 3600."
		if !isPermanent(err) || err.Error() != want {
			t.Errorf("got %q,\nwant %q", err, want)
		}
	})

	t.Run("throttled", func(t *testing.T) {
		f, p := start(t, 3600)
		f.addFault(fault{at: 2, status: 429, header: map[string]string{"Retry-After": "79200"}, body: `{"detail": "Request was throttled. Expected available in 79200 seconds."}`})
		err := p.Update(ctx, Record{Name: "home.example.org", Type: "A", TTL: time.Hour}, v4a)
		var w *WaitError
		if !isWait(err) || !strings.Contains(err.Error(), "Request was throttled") {
			t.Fatalf("got %v", err)
		}
		if errors.As(err, &w); w.After != 22*time.Hour {
			t.Errorf("wait %s, want 22h", w.After)
		}
	})

	t.Run("a token without write permission", func(t *testing.T) {
		f, p := start(t, 3600)
		f.addFault(fault{at: 2, status: 403, body: `{"detail": "You do not have permission to perform this action."}`})
		err := p.Update(ctx, Record{Name: "home.example.org", Type: "A", TTL: time.Hour}, v4a)
		if !isPermanent(err) || !strings.Contains(err.Error(), "HTTP 403: You do not have permission") {
			t.Errorf("got %v", err)
		}
	})
}
