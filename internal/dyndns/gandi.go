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

// GandiURL is the Gandi LiveDNS v5 base URL.
const GandiURL = "https://api.gandi.net/v5/livedns"

// gandiMinTTL is LiveDNS's smallest rrset_ttl; shorter TTLs are raised to
// it.
const gandiMinTTL = 300 * time.Second

// Gandi publishes through Gandi's LiveDNS v5 API: one PUT of the record's
// rrset_values and rrset_ttl, which creates or replaces it. The token is a
// personal access token (Authorization: Bearer) with the "Manage domain
// name technical configurations" right on the domain; a deprecated API key
// is given as the token "Apikey <key>".
type Gandi struct {
	BaseURL string // default GandiURL
	Zone    string // the domain, e.g. example.org
	Token   string
	Client  *http.Client
}

// Name implements Provider.
func (p *Gandi) Name() string { return "gandi" }

func (p *Gandi) api() *apiClient {
	value, secret := "Bearer "+p.Token, p.Token
	if k, ok := strings.CutPrefix(p.Token, "Apikey "); ok {
		value, secret = "Apikey "+strings.TrimSpace(k), strings.TrimSpace(k)
	}
	return newAPI("gandi", p.BaseURL, GandiURL, "Authorization", value, secret, p.Client, gandiMessage)
}

// gandiMessage reads a LiveDNS error answer: {"code", "message", "object",
// "cause", "errors": [{"location", "name", "description"}]}.
func gandiMessage(b []byte) string {
	var e struct {
		Message string `json:"message"`
		Cause   string `json:"cause"`
		Errors  []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	msg := e.Message
	if msg == "" {
		msg = e.Cause
	}
	for _, f := range e.Errors {
		msg += fmt.Sprintf("; %s: %s", f.Name, f.Description)
	}
	return strings.TrimPrefix(msg, "; ")
}

func (p *Gandi) path(r Record) (string, error) {
	zone := zoneKey(p.Zone)
	name, err := relName(r.Name, zone)
	if err != nil {
		return "", &PermanentError{Reason: "gandi: " + err.Error()}
	}
	if name == "" {
		name = "@"
	}
	return "/domains/" + url.PathEscape(zone) + "/records/" + url.PathEscape(name) + "/" + url.PathEscape(r.Type), nil
}

// Update implements Provider.
func (p *Gandi) Update(ctx context.Context, r Record, addr netip.Addr) error {
	if err := checkType("gandi", r, addr); err != nil {
		return err
	}
	path, err := p.path(r)
	if err != nil {
		return err
	}
	c := p.api()
	what := fmt.Sprintf("update %s %s", r.Name, r.Type)
	rep, err := c.do(ctx, http.MethodPut, path, nil, map[string]any{
		"rrset_values": []string{addr.String()},
		"rrset_ttl":    ttlSeconds(r.TTL, gandiMinTTL),
	})
	if err != nil {
		return err
	}
	// {"message": "DNS Record Created"}; anything else (a proxy's page)
	// did not come from LiveDNS.
	var ok struct {
		Message string `json:"message"`
	}
	return c.expect(what, rep, &ok, http.StatusOK, http.StatusCreated)
}

// Current implements Provider: the record as LiveDNS holds it (the zero
// address when there is none).
func (p *Gandi) Current(ctx context.Context, r Record) (netip.Addr, error) {
	path, err := p.path(r)
	if err != nil {
		return netip.Addr{}, err
	}
	c := p.api()
	what := fmt.Sprintf("read %s %s", r.Name, r.Type)
	rep, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	if rep.Status == http.StatusNotFound {
		return netip.Addr{}, nil
	}
	var rr struct {
		Values []string `json:"rrset_values"`
	}
	if err := c.expect(what, rep, &rr, http.StatusOK); err != nil {
		return netip.Addr{}, err
	}
	return firstHeld("gandi", r, rr.Values)
}
