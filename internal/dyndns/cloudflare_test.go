package dyndns

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// cloudflareFake serves the parts of the Cloudflare API v4 the provider
// uses, as its documentation gives them: Bearer token; GET /zones?name=;
// GET /zones/{id}/dns_records?type=&name=; POST /zones/{id}/dns_records;
// PATCH /zones/{id}/dns_records/{record id}; every answer in the
// {success, errors, messages, result} envelope.
type cloudflareFake struct {
	*fakeZone
	zoneID string
}

func cfAnswer(w http.ResponseWriter, status int, result any) {
	writeJSON(w, status, map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result})
}

func cfError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "errors": []any{map[string]any{"code": code, "message": msg}}, "messages": []any{}, "result": nil})
}

func (f *cloudflareFake) record(fqdn, typ string, r *fakeRec) map[string]any {
	m := map[string]any{"id": r.id, "zone_id": f.zoneID, "zone_name": f.zone, "name": fqdn, "type": typ, "content": r.value, "ttl": r.ttl, "proxied": false}
	for k, v := range r.extra {
		m[k] = v
	}
	return m
}

func (f *cloudflareFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.begin(w, r) {
		return
	}
	switch auth := r.Header.Get("Authorization"); {
	case !strings.HasPrefix(auth, "Bearer "):
		cfError(w, 400, 6003, "Invalid request headers")
		return
	case auth != "Bearer "+f.token:
		cfError(w, 403, 9109, "Invalid access token")
		return
	}
	zonePath := "/client/v4/zones/" + f.zoneID + "/dns_records"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/client/v4/zones":
		zones := []any{}
		if r.URL.Query().Get("name") == f.zone {
			zones = append(zones, map[string]any{"id": f.zoneID, "name": f.zone, "status": "active"})
		}
		cfAnswer(w, 200, zones)
	case r.Method == http.MethodGet && r.URL.Path == zonePath:
		q := r.URL.Query()
		recs := []any{}
		for k, rec := range f.recs {
			fqdn, typ, _ := strings.Cut(k, "/")
			if (q.Get("type") == "" || q.Get("type") == typ) && (q.Get("name") == "" || q.Get("name") == fqdn) {
				recs = append(recs, f.record(fqdn, typ, rec))
			}
		}
		cfAnswer(w, 200, recs)
	case r.Method == http.MethodPost && r.URL.Path == zonePath:
		var body struct {
			Type    string `json:"type"`
			Name    string `json:"name"`
			Content string `json:"content"`
			TTL     int    `json:"ttl"`
			Proxied *bool  `json:"proxied"`
		}
		if err := readJSON(r, &body); err != nil {
			cfError(w, 400, 9207, "Request body is invalid: "+err.Error())
			return
		}
		if !f.valid(w, body.Type, body.Content, body.TTL) {
			return
		}
		if body.Proxied == nil || *body.Proxied {
			f.t.Errorf("created record proxied %v, want false", body.Proxied)
		}
		if _, ok := f.recs[recKey(body.Name, body.Type)]; ok {
			cfError(w, 400, 81058, "An identical record already exists.")
			return
		}
		f.writes++
		rec := f.setLocked(body.Name, body.Type, body.Content, body.TTL)
		cfAnswer(w, 200, f.record(body.Name, body.Type, rec))
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, zonePath+"/"):
		id := strings.TrimPrefix(r.URL.Path, zonePath+"/")
		var body struct {
			Content string `json:"content"`
			TTL     *int   `json:"ttl"`
		}
		if err := readJSON(r, &body); err != nil {
			cfError(w, 400, 9207, "Request body is invalid: "+err.Error())
			return
		}
		for k, rec := range f.recs {
			if rec.id != id {
				continue
			}
			fqdn, typ, _ := strings.Cut(k, "/")
			ttl := rec.ttl
			if body.TTL != nil {
				ttl = *body.TTL
				if rec.extra["proxied"] == true {
					f.t.Errorf("a TTL was sent for a proxied record")
				}
			}
			if !f.valid(w, typ, body.Content, ttl) {
				return
			}
			f.writes++
			rec.value, rec.ttl = body.Content, ttl
			cfAnswer(w, 200, f.record(fqdn, typ, rec))
			return
		}
		cfError(w, 404, 81044, "Record does not exist.")
	case strings.HasPrefix(r.URL.Path, "/client/v4/zones/"):
		cfError(w, 404, 7003, fmt.Sprintf("Could not route to %s, perhaps your object identifier is invalid?", r.URL.Path))
	default:
		cfError(w, 404, 7000, "No route for that URI")
	}
}

// valid checks a record as Cloudflare would.
func (f *cloudflareFake) valid(w http.ResponseWriter, typ, content string, ttl int) bool {
	a, err := netip.ParseAddr(content)
	switch {
	case typ == "A" && (err != nil || !a.Is4()):
		cfError(w, 400, 9005, "Content for A record must be a valid IPv4 address.")
	case typ == "AAAA" && (err != nil || !a.Is6()):
		cfError(w, 400, 9006, "Content for AAAA record must be a valid IPv6 address.")
	case ttl != 1 && (ttl < 60 || ttl > 86400):
		cfError(w, 400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
	default:
		return true
	}
	return false
}

func cloudflareSetup() apiSetup {
	return apiSetup{
		name: "cloudflare",
		fake: func(z *fakeZone) http.Handler {
			return &cloudflareFake{fakeZone: z, zoneID: "023e105f4ecef8ad9ca31a8372d0c353"}
		},
		prefix: "/client/v4",
		provider: func(base, token string, c *http.Client) Provider {
			return &Cloudflare{BaseURL: base, Zone: testZone, Token: token, Client: c}
		},
		minTTL:       60,
		unauthorized: 403,
	}
}

func TestCloudflare(t *testing.T) { testAPIProvider(t, cloudflareSetup()) }

func TestCloudflareSpecifics(t *testing.T) {
	ctx := context.Background()
	home := Record{Name: "home.example.org", Type: "A", TTL: 2 * time.Minute}
	start := func(t *testing.T) (*cloudflareFake, *Cloudflare) {
		z := newFakeZone(t)
		f := &cloudflareFake{fakeZone: z, zoneID: "z1"}
		ts := httptest.NewTLSServer(f)
		t.Cleanup(ts.Close)
		return f, &Cloudflare{BaseURL: ts.URL + "/client/v4", Zone: testZone, Token: testToken, Client: ts.Client()}
	}

	t.Run("the zone id is looked up once", func(t *testing.T) {
		f, p := start(t)
		p.Update(ctx, home, v4a)
		p.Update(ctx, home, v4b)
		zones := 0
		for _, r := range f.reqs {
			if strings.HasPrefix(r, "GET /client/v4/zones?") {
				zones++
			}
		}
		if zones != 1 {
			t.Errorf("%d zone lookups for two updates: %v", zones, f.reqs)
		}
		if r, _ := f.get("home.example.org", "A"); r.value != v4b.String() || r.ttl != 120 {
			t.Errorf("holds %+v", r)
		}
	})

	t.Run("a proxied record stays proxied, its TTL Cloudflare's", func(t *testing.T) {
		f, p := start(t)
		rec := f.set("home.example.org", "A", v4a.String(), 1)
		rec.extra["proxied"] = true
		if err := p.Update(ctx, home, v4b); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get("home.example.org", "A"); r.value != v4b.String() || r.ttl != 1 || r.extra["proxied"] != true {
			t.Errorf("holds %+v", r)
		}
	})

	t.Run("a record gone meanwhile: retried, the zone looked up again", func(t *testing.T) {
		f, p := start(t)
		f.set("home.example.org", "A", v4a.String(), 60)
		f.addFault(fault{at: 3, status: 404, body: `{"success": false, "errors": [{"code": 81044, "message": "Record does not exist."}], "result": null}`})
		err := p.Update(ctx, home, v4b)
		if err == nil || isPermanent(err) || isWait(err) || !strings.Contains(err.Error(), "Record does not exist. (code 81044)") {
			t.Fatalf("got %v, want a plain error", err)
		}
		if err := p.Update(ctx, home, v4b); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.Join(f.reqs, "\n"), "GET /client/v4/zones?"); n != 2 {
			t.Errorf("%d zone lookups, want 2: %v", n, f.reqs)
		}
	})

	t.Run("unknown zone", func(t *testing.T) {
		_, p := start(t)
		p.Zone = "example.com"
		err := p.Update(ctx, Record{Name: "home.example.com", Type: "A", TTL: time.Minute}, v4a)
		if !isPermanent(err) || !strings.Contains(err.Error(), "example.com") {
			t.Errorf("got %v, want a *PermanentError naming the zone", err)
		}
	})

	t.Run("success false on HTTP 200", func(t *testing.T) {
		f, p := start(t)
		f.addFault(fault{at: 1, status: 200, body: `{"success": false, "errors": [{"code": 1000, "message": "something odd"}], "result": null}`})
		err := p.Update(ctx, home, v4a)
		if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "something odd (code 1000)") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("an authentication code is permanent whatever the status", func(t *testing.T) {
		f, p := start(t)
		f.addFault(fault{at: 2, status: 400, body: `{"success": false, "errors": [{"code": 6111, "message": "Invalid format for Authorization header"}], "result": null}`})
		err := p.Update(ctx, home, v4a)
		if !isPermanent(err) || !strings.Contains(err.Error(), "HTTP 400: Invalid format for Authorization header (code 6111)") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("errors name the record and the API's message", func(t *testing.T) {
		f, p := start(t)
		f.addFault(fault{at: 3, status: 400, body: `{"success": false, "errors": [{"code": 9005, "message": "Content for A record must be a valid IPv4 address."}], "result": null}`})
		err := p.Update(ctx, home, v4a)
		want := "cloudflare: create home.example.org A: HTTP 400: Content for A record must be a valid IPv4 address. (code 9005)"
		if !isPermanent(err) || err.Error() != want {
			t.Errorf("got %q,\nwant %q", err, want)
		}
	})
}
