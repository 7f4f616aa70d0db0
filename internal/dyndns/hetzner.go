package dyndns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HetznerURL is the Hetzner DNS (DNS Console) API base URL.
const HetznerURL = "https://dns.hetzner.com/api/v1"

// hetznerMaxPages bounds the record listing: 100 pages of 100 records.
const hetznerMaxPages = 100

// Hetzner publishes through the Hetzner DNS API (Auth-API-Token): it finds
// the zone's id by name, lists the zone's records, and PUTs the record of
// the name and type, or POSTs it when absent. Zones moved to the Hetzner
// Console (the Cloud API) are no longer served by this API.
type Hetzner struct {
	BaseURL string // default HetznerURL
	Zone    string // e.g. example.org
	Token   string
	Client  *http.Client

	zones   idCache[string]
	records idCache[string] // record ids by Record.Key: an address change is one PUT
}

type hetznerRecord struct {
	ID     string `json:"id,omitempty"`
	ZoneID string `json:"zone_id"`
	Type   string `json:"type"`
	Name   string `json:"name"`
	Value  string `json:"value"`
	TTL    int    `json:"ttl,omitempty"`
}

// Name implements Provider.
func (p *Hetzner) Name() string { return "hetzner" }

func (p *Hetzner) api() *apiClient {
	return newAPI("hetzner", p.BaseURL, HetznerURL, "Auth-API-Token", p.Token, p.Token, p.Client, hetznerMessage)
}

// hetznerMessage reads an error answer: {"message": ...} (authentication)
// or {"error": {"message", "code"}}.
func hetznerMessage(b []byte) string {
	var e struct {
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	if e.Error.Message != "" {
		return e.Error.Message
	}
	return e.Message
}

// zoneID finds (once) the id of the configured zone.
func (p *Hetzner) zoneID(ctx context.Context, c *apiClient, r Record) (string, error) {
	zone := zoneKey(p.Zone)
	if id, ok := p.zones.get(zone); ok {
		return id, nil
	}
	what := fmt.Sprintf("look up zone %s for %s %s", zone, r.Name, r.Type)
	rep, err := c.do(ctx, http.MethodGet, "/zones", url.Values{"name": {zone}}, nil)
	if err != nil {
		return "", err
	}
	if rep.Status == http.StatusNotFound {
		return "", &PermanentError{Reason: fmt.Sprintf("hetzner: %s: HTTP 404: the account has no zone %s in the DNS Console", what, zone)}
	}
	var zs struct {
		Zones []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"zones"`
	}
	if err := c.expect(what, rep, &zs, http.StatusOK); err != nil {
		return "", err
	}
	for _, z := range zs.Zones {
		if strings.EqualFold(z.Name, zone) && z.ID != "" {
			p.zones.put(zone, z.ID)
			return z.ID, nil
		}
	}
	return "", &PermanentError{Reason: fmt.Sprintf("hetzner: %s: the account has no zone %s in the DNS Console", what, zone)}
}

// find returns the record named name (relative, "@" for the apex) of r's
// type in the zone, or nil.
func (p *Hetzner) find(ctx context.Context, c *apiClient, zid, name string, r Record, what string) (*hetznerRecord, error) {
	for page := 1; page <= hetznerMaxPages; page++ {
		q := url.Values{"zone_id": {zid}, "page": {strconv.Itoa(page)}, "per_page": {"100"}}
		rep, err := c.do(ctx, http.MethodGet, "/records", q, nil)
		if err != nil {
			return nil, err
		}
		if rep.Status == http.StatusNotFound {
			return nil, c.gone(what, rep)
		}
		var rs struct {
			Records []hetznerRecord `json:"records"`
			Meta    struct {
				Pagination struct {
					LastPage int `json:"last_page"`
				} `json:"pagination"`
			} `json:"meta"`
		}
		if err := c.expect(what, rep, &rs, http.StatusOK); err != nil {
			return nil, err
		}
		for i := range rs.Records {
			if rs.Records[i].Type == r.Type && strings.EqualFold(rs.Records[i].Name, name) && rs.Records[i].ID != "" {
				return &rs.Records[i], nil
			}
		}
		if page >= rs.Meta.Pagination.LastPage || len(rs.Records) == 0 {
			break
		}
	}
	return nil, nil
}

func (p *Hetzner) name(r Record) (string, error) {
	name, err := relName(r.Name, p.Zone)
	if err != nil {
		return "", &PermanentError{Reason: "hetzner: " + err.Error()}
	}
	if name == "" {
		name = "@"
	}
	return name, nil
}

// Update implements Provider.
func (p *Hetzner) Update(ctx context.Context, r Record, addr netip.Addr) error {
	if err := checkType("hetzner", r, addr); err != nil {
		return err
	}
	name, err := p.name(r)
	if err != nil {
		return err
	}
	c := p.api()
	zid, err := p.zoneID(ctx, c, r)
	if err != nil {
		return err
	}
	if err := p.update(ctx, c, zid, name, r, addr); err != nil {
		p.zones.drop(zoneKey(p.Zone))
		p.records.drop(r.Key())
		return err
	}
	return nil
}

func (p *Hetzner) update(ctx context.Context, c *apiClient, zid, name string, r Record, addr netip.Addr) error {
	what := fmt.Sprintf("update %s %s", r.Name, r.Type)
	// The listing walks every page of the zone: it is done once, then the
	// record's id is remembered (a stale one answers 404: looked up again).
	id, ok := p.records.get(r.Key())
	if !ok {
		rec, err := p.find(ctx, c, zid, name, r, what)
		if err != nil {
			return err
		}
		if rec != nil {
			id = rec.ID
		}
	}
	body := hetznerRecord{ZoneID: zid, Type: r.Type, Name: name, Value: addr.String(), TTL: ttlSeconds(r.TTL, time.Second)}
	method, path := http.MethodPost, "/records"
	if id != "" {
		method, path = http.MethodPut, "/records/"+url.PathEscape(id)
	} else {
		what = fmt.Sprintf("create %s %s", r.Name, r.Type)
	}
	rep, err := c.do(ctx, method, path, nil, body)
	if err != nil {
		return err
	}
	if rep.Status == http.StatusNotFound && id != "" {
		return c.gone(what, rep)
	}
	var got struct {
		Record hetznerRecord `json:"record"`
	}
	if err := c.expect(what, rep, &got, http.StatusOK, http.StatusCreated); err != nil {
		return err
	}
	if got.Record.ID != "" {
		id = got.Record.ID
	}
	if id != "" {
		p.records.put(r.Key(), id)
	}
	return nil
}

// Current implements Provider: the record as the API holds it (the zero
// address when there is none).
func (p *Hetzner) Current(ctx context.Context, r Record) (netip.Addr, error) {
	name, err := p.name(r)
	if err != nil {
		return netip.Addr{}, err
	}
	c := p.api()
	zid, err := p.zoneID(ctx, c, r)
	if err != nil {
		return netip.Addr{}, err
	}
	rec, err := p.find(ctx, c, zid, name, r, fmt.Sprintf("read %s %s", r.Name, r.Type))
	if err != nil || rec == nil {
		return netip.Addr{}, err
	}
	return parseHeld("hetzner", r, rec.Value)
}
