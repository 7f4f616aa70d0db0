package dyndns

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// gandiFake serves the parts of Gandi's LiveDNS v5 API the provider uses,
// as its documentation gives them: Authorization: Bearer <PAT> (or the
// deprecated Apikey <key>); PUT and GET
// /v5/livedns/domains/{fqdn}/records/{rrset_name}/{rrset_type} ("@" for the
// apex) with rrset_values and rrset_ttl (300 to 2592000); 201 {"message":
// "DNS Record Created"}; errors as {code, message, object, cause[, errors]}.
type gandiFake struct {
	*fakeZone
	apikey string // accepted as "Apikey <key>" when set
}

func gandiError(w http.ResponseWriter, status int, object, cause, msg string, errs ...map[string]string) {
	m := map[string]any{"code": status, "message": msg, "object": object, "cause": cause}
	if len(errs) > 0 {
		m["errors"] = errs
	}
	writeJSON(w, status, m)
}

func (f *gandiFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.begin(w, r) {
		return
	}
	auth := r.Header.Get("Authorization")
	if auth != "Bearer "+f.token && (f.apikey == "" || auth != "Apikey "+f.apikey) {
		gandiError(w, 401, "HTTPUnauthorized", "Unauthorized", "The server could not verify that you authenticated successfully")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/v5/livedns/domains/")
	parts := strings.Split(p, "/")
	if !ok || len(parts) != 4 || parts[1] != "records" {
		gandiError(w, 404, "HTTPNotFound", "Not Found", "The resource could not be found.")
		return
	}
	if parts[0] != f.zone {
		gandiError(w, 404, "HTTPNotFound", "Not Found", "Unknown domain "+parts[0])
		return
	}
	name, typ := parts[2], parts[3]
	fqdn := name + "." + f.zone
	if name == "@" {
		fqdn = f.zone
	}
	if strings.HasSuffix(name, f.zone) {
		f.t.Errorf("a full name in the path: %s", r.URL.Path)
	}
	switch r.Method {
	case http.MethodGet:
		rec, ok := f.recs[recKey(fqdn, typ)]
		if !ok {
			gandiError(w, 404, "dns-record", "Not Found", "Can't find the DNS record "+name+"/"+typ)
			return
		}
		writeJSON(w, 200, map[string]any{"rrset_name": name, "rrset_type": typ, "rrset_ttl": rec.ttl, "rrset_values": []string{rec.value},
			"rrset_href": "https://api.gandi.net/v5/livedns/domains/" + f.zone + "/records/" + name + "/" + typ})
	case http.MethodPut:
		var body struct {
			Values []string `json:"rrset_values"`
			TTL    *int     `json:"rrset_ttl"`
		}
		if err := readJSON(r, &body); err != nil {
			gandiError(w, 400, "HTTPBadRequest", "Bad Request", "Invalid JSON: "+err.Error())
			return
		}
		ttl := 10800
		if body.TTL != nil {
			ttl = *body.TTL
		}
		if ttl < 300 || ttl > 2592000 {
			gandiError(w, 400, "HTTPBadRequest", "Bad Request", "Validation error", map[string]string{"location": "body", "name": "rrset_ttl", "description": "must be between 300 and 2592000"})
			return
		}
		if len(body.Values) != 1 {
			f.t.Errorf("%d values, want one address", len(body.Values))
		}
		for _, v := range body.Values {
			if a, err := netip.ParseAddr(v); err != nil || (typ == "A") != a.Is4() {
				gandiError(w, 400, "HTTPBadRequest", "Bad Request", "Validation error", map[string]string{"location": "body", "name": "rrset_values", "description": "invalid value " + v})
				return
			}
		}
		f.writes++
		f.setLocked(fqdn, typ, body.Values[0], ttl)
		writeJSON(w, 201, map[string]string{"message": "DNS Record Created"})
	default:
		gandiError(w, 405, "HTTPMethodNotAllowed", "Method Not Allowed", "The method is not allowed for the requested URL.")
	}
}

func gandiSetup() apiSetup {
	return apiSetup{
		name: "gandi",
		fake: func(z *fakeZone) http.Handler { return &gandiFake{fakeZone: z} },
		provider: func(base, token string, c *http.Client) Provider {
			return &Gandi{BaseURL: base, Zone: testZone, Token: token, Client: c}
		},
		prefix:       "/v5/livedns",
		minTTL:       300,
		unauthorized: 401,
	}
}

func TestGandi(t *testing.T) { testAPIProvider(t, gandiSetup()) }

func TestGandiSpecifics(t *testing.T) {
	ctx := context.Background()
	home := Record{Name: "home.example.org", Type: "A", TTL: time.Hour}
	start := func(t *testing.T) (*gandiFake, *Gandi) {
		f := &gandiFake{fakeZone: newFakeZone(t), apikey: "legacy-K3y"}
		ts := httptest.NewTLSServer(f)
		t.Cleanup(ts.Close)
		return f, &Gandi{BaseURL: ts.URL + "/v5/livedns", Zone: testZone, Token: testToken, Client: ts.Client()}
	}

	t.Run("one PUT per update", func(t *testing.T) {
		f, p := start(t)
		if err := p.Update(ctx, home, v4a); err != nil {
			t.Fatal(err)
		}
		if len(f.reqs) != 1 || f.reqs[0] != "PUT /v5/livedns/domains/example.org/records/home/A" {
			t.Errorf("requests %v", f.reqs)
		}
	})

	t.Run("the deprecated API key", func(t *testing.T) {
		f, p := start(t)
		p.Token = "Apikey legacy-K3y"
		if err := p.Update(ctx, home, v4a); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get("home.example.org", "A"); r.value != v4a.String() || r.ttl != 3600 {
			t.Errorf("holds %+v", r)
		}
		p.Token = "Apikey wrong-key"
		err := p.Update(ctx, home, v4b)
		if !isPermanent(err) || strings.Contains(err.Error(), "wrong-key") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("an unknown domain", func(t *testing.T) {
		_, p := start(t)
		p.Zone = "example.net"
		err := p.Update(ctx, Record{Name: "home.example.net", Type: "A", TTL: time.Hour}, v4a)
		want := "gandi: update home.example.net A: HTTP 404: Unknown domain example.net"
		if !isPermanent(err) || err.Error() != want {
			t.Errorf("got %q,\nwant %q", err, want)
		}
	})

	t.Run("a validation error names the field", func(t *testing.T) {
		f, p := start(t)
		f.addFault(fault{at: 1, status: 400, body: `{"code": 400, "message": "Validation error", "object": "HTTPBadRequest", "cause": "Bad Request", "errors": [{"location": "body", "name": "rrset_ttl", "description": "must be between 300 and 2592000"}]}`})
		err := p.Update(ctx, home, v4a)
		want := "gandi: update home.example.org A: HTTP 400: Validation error; rrset_ttl: must be between 300 and 2592000"
		if !isPermanent(err) || err.Error() != want {
			t.Errorf("got %q,\nwant %q", err, want)
		}
	})
}
