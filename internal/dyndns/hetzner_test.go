package dyndns

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hetznerFake serves the parts of the Hetzner DNS API the provider uses, as
// its documentation gives them: Auth-API-Token header; GET /zones?name=;
// GET /records?zone_id= (paginated: page, per_page, meta.pagination); POST
// /records and PUT /records/{id} with {value, ttl, type, name, zone_id}
// (names relative, "@" for the apex) answering {"record": ...}; errors as
// {"error": {"message", "code"}}, a wrong token as {"message": ...}.
type hetznerFake struct {
	*fakeZone
	zoneID string
}

func hetznerError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "code": status}})
}

func (f *hetznerFake) rel(fqdn string) string {
	if fqdn == f.zone {
		return "@"
	}
	return strings.TrimSuffix(fqdn, "."+f.zone)
}

func (f *hetznerFake) record(fqdn, typ string, r *fakeRec) map[string]any {
	return map[string]any{"id": r.id, "zone_id": f.zoneID, "type": typ, "name": f.rel(fqdn), "value": r.value, "ttl": r.ttl,
		"created": "2020-01-01 00:00:00.000 +0000 UTC", "modified": "2020-01-01 00:00:00.000 +0000 UTC"}
}

func (f *hetznerFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.begin(w, r) {
		return
	}
	if r.Header.Get("Auth-API-Token") != f.token {
		writeJSON(w, 401, map[string]string{"message": "Invalid authentication credentials"})
		return
	}
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/zones":
		if q.Get("name") != f.zone {
			writeJSON(w, 404, map[string]any{"zones": []any{}, "error": map[string]any{"message": "zone not found", "code": 404}})
			return
		}
		writeJSON(w, 200, map[string]any{
			"zones": []any{map[string]any{"id": f.zoneID, "name": f.zone, "ttl": 86400, "status": "verified"}},
			"meta":  map[string]any{"pagination": map[string]any{"page": 1, "per_page": 100, "last_page": 1, "total_entries": 1}},
		})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/records":
		if q.Get("zone_id") != f.zoneID {
			hetznerError(w, 404, "zone not found")
			return
		}
		page, _ := strconv.Atoi(q.Get("page"))
		per, _ := strconv.Atoi(q.Get("per_page"))
		page, per = max(page, 1), max(per, 1)
		if per > 100 {
			per = 100
		}
		var keys []string
		for k := range f.recs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		recs := []any{}
		for i := (page - 1) * per; i < len(keys) && i < page*per; i++ {
			fqdn, typ, _ := strings.Cut(keys[i], "/")
			recs = append(recs, f.record(fqdn, typ, f.recs[keys[i]]))
		}
		last := max((len(keys)+per-1)/per, 1)
		writeJSON(w, 200, map[string]any{"records": recs, "meta": map[string]any{"pagination": map[string]any{"page": page, "per_page": per, "last_page": last, "total_entries": len(keys)}}})
	case (r.Method == http.MethodPost && r.URL.Path == "/api/v1/records") || (r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v1/records/")):
		var body struct {
			ZoneID string `json:"zone_id"`
			Type   string `json:"type"`
			Name   string `json:"name"`
			Value  string `json:"value"`
			TTL    *int   `json:"ttl"`
		}
		if err := readJSON(r, &body); err != nil {
			hetznerError(w, 422, "invalid JSON: "+err.Error())
			return
		}
		if body.ZoneID != f.zoneID {
			hetznerError(w, 422, "zone_id: invalid")
			return
		}
		if a, err := netip.ParseAddr(body.Value); err != nil || (body.Type == "A") != a.Is4() {
			hetznerError(w, 422, fmt.Sprintf("invalid %s value %q", body.Type, body.Value))
			return
		}
		if body.Name == "" || strings.HasSuffix(body.Name, f.zone) {
			hetznerError(w, 422, fmt.Sprintf("name %q: a name relative to the zone", body.Name))
			return
		}
		fqdn := body.Name + "." + f.zone
		if body.Name == "@" {
			fqdn = f.zone
		}
		ttl := 86400
		if body.TTL != nil {
			ttl = *body.TTL
		}
		if r.Method == http.MethodPut {
			id := strings.TrimPrefix(r.URL.Path, "/api/v1/records/")
			cur, ok := f.recs[recKey(fqdn, body.Type)]
			if !ok || cur.id != id {
				writeJSON(w, 404, map[string]any{"record": map[string]any{}, "error": map[string]any{"message": "record not found", "code": 404}})
				return
			}
		} else if _, ok := f.recs[recKey(fqdn, body.Type)]; ok {
			// The real API would add a second record: the provider
			// must not ask for one.
			f.t.Errorf("POST of a record that exists: %s %s", fqdn, body.Type)
		}
		f.writes++
		rec := f.setLocked(fqdn, body.Type, body.Value, ttl)
		writeJSON(w, 200, map[string]any{"record": f.record(fqdn, body.Type, rec)})
	default:
		hetznerError(w, 404, "not found")
	}
}

func hetznerSetup() apiSetup {
	return apiSetup{
		name: "hetzner",
		fake: func(z *fakeZone) http.Handler { return &hetznerFake{fakeZone: z, zoneID: "HBdk3MgfzmZ8N6ANd6ZxA3"} },
		provider: func(base, token string, c *http.Client) Provider {
			return &Hetzner{BaseURL: base, Zone: testZone, Token: token, Client: c}
		},
		prefix:       "/api/v1",
		minTTL:       60,
		unauthorized: 401,
	}
}

func TestHetzner(t *testing.T) { testAPIProvider(t, hetznerSetup()) }

func TestHetznerSpecifics(t *testing.T) {
	ctx := context.Background()
	home := Record{Name: "home.example.org", Type: "A", TTL: time.Minute}
	start := func(t *testing.T) (*hetznerFake, *Hetzner) {
		f := &hetznerFake{fakeZone: newFakeZone(t), zoneID: "z1"}
		ts := httptest.NewTLSServer(f)
		t.Cleanup(ts.Close)
		return f, &Hetzner{BaseURL: ts.URL + "/api/v1", Zone: testZone, Token: testToken, Client: ts.Client()}
	}

	t.Run("a record on a later page is updated, not duplicated", func(t *testing.T) {
		f, p := start(t)
		for i := range 250 {
			f.set(fmt.Sprintf("a%03d.example.org", i), "A", "203.0.113.1", 3600)
		}
		f.set("home.example.org", "A", v4a.String(), 3600) // sorts after a*: page 3
		if err := p.Update(ctx, home, v4b); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get("home.example.org", "A"); r.value != v4b.String() || r.ttl != 60 {
			t.Errorf("holds %+v", r)
		}
		if f.size() != 251 {
			t.Errorf("%d records, want 251", f.size())
		}
		if a, err := p.Current(ctx, home); err != nil || a != v4b {
			t.Errorf("Current = %v, %v", a, err)
		}
	})

	t.Run("the record id is remembered, a stale one looked up again", func(t *testing.T) {
		f, p := start(t)
		if err := p.Update(ctx, home, v4a); err != nil { // zone, list, POST
			t.Fatal(err)
		}
		f.mu.Lock()
		f.reqs = nil
		f.mu.Unlock()
		if err := p.Update(ctx, home, v4b); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get("home.example.org", "A"); r.value != v4b.String() {
			t.Errorf("holds %+v", r)
		}
		if want := []string{"PUT /api/v1/records/" + f.recs["home.example.org/A"].id}; !slices.Equal(f.reqs, want) {
			t.Errorf("requests %q, want %q", f.reqs, want)
		}
		// Deleted and made again by hand: a new id.
		f.mu.Lock()
		delete(f.recs, "home.example.org/A")
		f.mu.Unlock()
		f.set("home.example.org", "A", v4a.String(), 3600)
		err := p.Update(ctx, home, v4b)
		if err == nil || isPermanent(err) || isWait(err) || !strings.Contains(err.Error(), "HTTP 404") {
			t.Fatalf("got %T %v, want a plain error on the stale id", err, err)
		}
		if err := p.Update(ctx, home, v4b); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get("home.example.org", "A"); r.value != v4b.String() {
			t.Errorf("holds %+v", r)
		}
		if f.size() != 1 {
			t.Errorf("%d records, want 1", f.size())
		}
	})

	t.Run("an unknown zone", func(t *testing.T) {
		_, p := start(t)
		p.Zone = "example.net"
		err := p.Update(ctx, Record{Name: "home.example.net", Type: "A", TTL: time.Minute}, v4a)
		if !isPermanent(err) || !strings.Contains(err.Error(), "no zone example.net") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("a refused record gives Hetzner's words", func(t *testing.T) {
		f, p := start(t)
		f.addFault(fault{at: 3, status: 422, body: `{"error": {"message": "invalid TTL", "code": 422}}`})
		err := p.Update(ctx, home, v4a)
		want := "hetzner: create home.example.org A: HTTP 422: invalid TTL"
		if !isPermanent(err) || err.Error() != want {
			t.Errorf("got %q,\nwant %q", err, want)
		}
	})
}
