package dyndns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// CloudflareURL is the Cloudflare API v4 base URL.
const CloudflareURL = "https://api.cloudflare.com/client/v4"

// cloudflareMinTTL is the smallest TTL Cloudflare accepts outside
// Enterprise plans (1 means "automatic"); shorter TTLs are raised to it.
const cloudflareMinTTL = 60 * time.Second

// Cloudflare publishes through the Cloudflare API v4 with an API token
// (Authorization: Bearer). It finds the zone's id by name, then the record
// by type and name, and PATCHes it, or POSTs it (not proxied) when absent.
// The token needs Zone:Read and DNS:Edit on the zone.
type Cloudflare struct {
	BaseURL string // default CloudflareURL
	Zone    string // e.g. example.org
	Token   string
	Client  *http.Client // its Timeout bounds each request

	zones idCache[string]
}

// Name implements Provider.
func (p *Cloudflare) Name() string { return "cloudflare" }

func (p *Cloudflare) api() *apiClient {
	c := newAPI("cloudflare", p.BaseURL, CloudflareURL, "Authorization", "Bearer "+p.Token, p.Token, p.Client, cfMessage)
	c.wait = 5 * time.Minute // Cloudflare blocks a client over its rate for five minutes
	return c
}

// cfEnvelope is the shape of every Cloudflare v4 answer.
type cfEnvelope[T any] struct {
	Success bool         `json:"success"`
	Errors  []cfAPIError `json:"errors"`
	Result  T            `json:"result"`
}

type cfRecord struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Proxied bool   `json:"proxied"`
}

type cfAPIError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// cfErrors joins an envelope's errors and says whether one of them is
// about the credentials.
func cfErrors(errs []cfAPIError) (msg string, auth bool) {
	for i, e := range errs {
		if i > 0 {
			msg += "; "
		}
		msg += fmt.Sprintf("%s (code %d)", e.Message, e.Code)
		switch e.Code {
		case 9103, 9106, 9109, 10000, 6003, 6111:
			// Unknown key, missing or invalid token, authentication
			// error, malformed authorization headers.
			auth = true
		}
	}
	return msg, auth
}

// cfMessage is the errors of an answer's envelope.
func cfMessage(b []byte) string {
	var env cfEnvelope[json.RawMessage]
	if json.Unmarshal(b, &env) != nil {
		return ""
	}
	msg, _ := cfErrors(env.Errors)
	return msg
}

// cfCall sends one request and decodes the envelope's result into out,
// mapping failures (HTTP status, success:false, error codes) to the
// updater's errors.
func cfCall[T any](ctx context.Context, c *apiClient, what, method, path string, q url.Values, body any) (T, error) {
	var zero T
	rep, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return zero, err
	}
	var env cfEnvelope[T]
	jsonErr := c.decode(what, rep, &env)
	msg, auth := cfErrors(env.Errors)
	if rep.Status < 200 || rep.Status > 299 {
		if auth && rep.Status >= 400 && rep.Status < 500 && rep.Status != http.StatusTooManyRequests {
			// Whatever the status (Cloudflare answers 400 for a
			// malformed token), only a new token helps.
			return zero, &PermanentError{Reason: fmt.Sprintf("cloudflare: %s: HTTP %d: %s (check the token and its rights: Zone:Read, DNS:Edit)", what, rep.Status, c.clean(msg))}
		}
		if rep.Status == http.StatusNotFound {
			return zero, c.gone(what, rep)
		}
		return zero, c.failure(what, rep, msg, c.wait)
	}
	if jsonErr != nil {
		return zero, jsonErr
	}
	if !env.Success {
		if msg == "" {
			msg = "success: false without errors"
		}
		return zero, fmt.Errorf("cloudflare: %s: HTTP %d: %s", what, rep.Status, c.clean(msg))
	}
	return env.Result, nil
}

// zoneID finds (once) the id of the configured zone.
func (p *Cloudflare) zoneID(ctx context.Context, c *apiClient, r Record) (string, error) {
	zone := zoneKey(p.Zone)
	if id, ok := p.zones.get(zone); ok {
		return id, nil
	}
	what := fmt.Sprintf("look up zone %s for %s %s", zone, r.Name, r.Type)
	zs, err := cfCall[[]struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}](ctx, c, what, http.MethodGet, "/zones", url.Values{"name": {zone}}, nil)
	if err != nil {
		return "", err
	}
	for _, z := range zs {
		if strings.EqualFold(z.Name, zone) && z.ID != "" {
			p.zones.put(zone, z.ID)
			return z.ID, nil
		}
	}
	return "", &PermanentError{Reason: fmt.Sprintf("cloudflare: %s: no such zone in the account (or the token lacks Zone:Read on it)", what)}
}

// find returns the record of r's type and name, or nil.
func (p *Cloudflare) find(ctx context.Context, c *apiClient, zoneID string, r Record, what string) (*cfRecord, error) {
	name := strings.ToLower(strings.TrimSuffix(r.Name, "."))
	recs, err := cfCall[[]cfRecord](ctx, c, what, http.MethodGet, "/zones/"+url.PathEscape(zoneID)+"/dns_records",
		url.Values{"type": {r.Type}, "name": {name}}, nil)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		if strings.EqualFold(strings.TrimSuffix(recs[i].Name, "."), name) && recs[i].Type == r.Type && recs[i].ID != "" {
			return &recs[i], nil
		}
	}
	return nil, nil
}

// Update implements Provider.
func (p *Cloudflare) Update(ctx context.Context, r Record, addr netip.Addr) error {
	if err := checkType("cloudflare", r, addr); err != nil {
		return err
	}
	if _, err := relName(r.Name, p.Zone); err != nil {
		return &PermanentError{Reason: "cloudflare: " + err.Error()}
	}
	c := p.api()
	zid, err := p.zoneID(ctx, c, r)
	if err != nil {
		return err
	}
	if err := p.update(ctx, c, zid, r, addr); err != nil {
		p.zones.drop(zoneKey(p.Zone))
		return err
	}
	return nil
}

func (p *Cloudflare) update(ctx context.Context, c *apiClient, zid string, r Record, addr netip.Addr) error {
	what := fmt.Sprintf("update %s %s", r.Name, r.Type)
	rec, err := p.find(ctx, c, zid, r, what)
	if err != nil {
		return err
	}
	name := strings.ToLower(strings.TrimSuffix(r.Name, "."))
	ttl := ttlSeconds(r.TTL, cloudflareMinTTL)
	if rec == nil {
		body := map[string]any{"type": r.Type, "name": name, "content": addr.String(), "ttl": ttl, "proxied": false}
		_, err = cfCall[cfRecord](ctx, c, "create "+name+" "+r.Type, http.MethodPost, "/zones/"+url.PathEscape(zid)+"/dns_records", nil, body)
		return err
	}
	body := map[string]any{"content": addr.String()}
	if !rec.Proxied { // a proxied record's TTL is Cloudflare's ("automatic")
		body["ttl"] = ttl
	}
	_, err = cfCall[cfRecord](ctx, c, what, http.MethodPatch, "/zones/"+url.PathEscape(zid)+"/dns_records/"+url.PathEscape(rec.ID), nil, body)
	return err
}

// Current implements Provider: the record as the API holds it (the zero
// address when there is none).
func (p *Cloudflare) Current(ctx context.Context, r Record) (netip.Addr, error) {
	c := p.api()
	zid, err := p.zoneID(ctx, c, r)
	if err != nil {
		return netip.Addr{}, err
	}
	rec, err := p.find(ctx, c, zid, r, fmt.Sprintf("read %s %s", r.Name, r.Type))
	if err != nil || rec == nil {
		return netip.Addr{}, err
	}
	return parseHeld("cloudflare", r, rec.Content)
}
