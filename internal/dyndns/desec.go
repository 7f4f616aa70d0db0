package dyndns

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DeSECURL is the deSEC API base URL.
const DeSECURL = "https://desec.io/api/v1"

// desecMinTTL is deSEC's usual minimum TTL; the domain's own minimum_ttl,
// when the API gives it, wins. Shorter TTLs are raised to it (gate check
// warns about it).
const desecMinTTL = time.Hour

// DeSEC publishes through the deSEC API (Authorization: Token). The record
// is written with one bulk PUT on the domain's rrsets/ endpoint, which
// creates the RRset or replaces its records. The domain is the site file's
// zone, else the one deSEC says holds the name (owns_qname). A token
// restricted by a scoping policy needs perm_write on the record's RRsets.
type DeSEC struct {
	BaseURL string // default DeSECURL
	Domain  string // the deSEC domain; "" = ask deSEC for each name
	Token   string
	Client  *http.Client

	mu      sync.Mutex
	domains map[string]desecDomain // by record name
}

type desecDomain struct {
	Name       string `json:"name"`
	MinimumTTL int    `json:"minimum_ttl"`
}

type desecRRset struct {
	Subname string   `json:"subname"`
	Type    string   `json:"type"`
	TTL     int      `json:"ttl,omitempty"`
	Records []string `json:"records"`
}

// Name implements Provider.
func (p *DeSEC) Name() string { return "desec" }

func (p *DeSEC) api() *apiClient {
	base := p.BaseURL
	if base == "" {
		base = DeSECURL
	}
	return &apiClient{provider: "desec", base: strings.TrimSuffix(base, "/"), header: "Authorization", value: "Token " + p.Token, secret: p.Token, client: p.Client}
}

// fail maps a deSEC error answer; deSEC's throttling message and
// Retry-After give the wait.
func desecFail(c *apiClient, what string, rep *apiReply) error {
	return c.failure(what, rep, jsonMessage(rep.Body), time.Minute)
}

// domain finds (once per record) the deSEC domain holding r and its
// minimum TTL.
func (p *DeSEC) domain(ctx context.Context, c *apiClient, r Record) (desecDomain, error) {
	key := strings.ToLower(strings.TrimSuffix(r.Name, "."))
	p.mu.Lock()
	d, ok := p.domains[key]
	p.mu.Unlock()
	if ok {
		return d, nil
	}
	if p.Domain != "" {
		zone := strings.ToLower(strings.TrimSuffix(p.Domain, "."))
		if _, err := relName(r.Name, zone); err != nil {
			return d, &PermanentError{Reason: "desec: " + err.Error()}
		}
		what := fmt.Sprintf("look up domain %s for %s %s", zone, r.Name, r.Type)
		rep, err := c.do(ctx, http.MethodGet, "/domains/"+url.PathEscape(zone)+"/", nil, nil)
		if err != nil {
			return d, err
		}
		if rep.Status == http.StatusNotFound {
			return d, &PermanentError{Reason: fmt.Sprintf("desec: %s: HTTP 404: the account has no domain %s", what, zone)}
		}
		if rep.Status != http.StatusOK {
			return d, desecFail(c, what, rep)
		}
		if err := c.decode(what, rep, &d); err != nil {
			return d, err
		}
	} else {
		what := fmt.Sprintf("find the domain of %s %s", r.Name, r.Type)
		rep, err := c.do(ctx, http.MethodGet, "/domains/", url.Values{"owns_qname": {key}}, nil)
		if err != nil {
			return d, err
		}
		if rep.Status != http.StatusOK {
			return d, desecFail(c, what, rep)
		}
		var ds []desecDomain
		if err := c.decode(what, rep, &ds); err != nil {
			return d, err
		}
		if len(ds) == 0 {
			return d, &PermanentError{Reason: fmt.Sprintf("desec: %s: no domain of the account holds %s", what, key)}
		}
		d = ds[0]
	}
	if _, err := relName(key, d.Name); err != nil {
		return d, fmt.Errorf("desec: domain %q does not hold %s", d.Name, key)
	}
	p.mu.Lock()
	if p.domains == nil {
		p.domains = map[string]desecDomain{}
	}
	p.domains[key] = d
	p.mu.Unlock()
	return d, nil
}

// TTL is the TTL deSEC will publish for r in d: r's, raised to the
// domain's minimum.
func (d desecDomain) ttl(r Record) int {
	least := desecMinTTL
	if d.MinimumTTL > 0 {
		least = time.Duration(d.MinimumTTL) * time.Second
	}
	return ttlSeconds(r.TTL, least)
}

// Update implements Provider.
func (p *DeSEC) Update(ctx context.Context, r Record, addr netip.Addr) error {
	if err := checkType("desec", r, addr); err != nil {
		return err
	}
	c := p.api()
	d, err := p.domain(ctx, c, r)
	if err != nil {
		return err
	}
	sub, _ := relName(r.Name, d.Name)
	what := fmt.Sprintf("update %s %s", r.Name, r.Type)
	rep, err := c.do(ctx, http.MethodPut, "/domains/"+url.PathEscape(d.Name)+"/rrsets/", nil,
		[]desecRRset{{Subname: sub, Type: r.Type, TTL: d.ttl(r), Records: []string{addr.String()}}})
	if err != nil {
		return err
	}
	if rep.Status != http.StatusOK && rep.Status != http.StatusCreated {
		return desecFail(c, what, rep)
	}
	var got []desecRRset
	return c.decode(what, rep, &got)
}

// Current implements Provider: the RRset as deSEC holds it (the zero
// address when there is none).
func (p *DeSEC) Current(ctx context.Context, r Record) (netip.Addr, error) {
	c := p.api()
	d, err := p.domain(ctx, c, r)
	if err != nil {
		return netip.Addr{}, err
	}
	sub, _ := relName(r.Name, d.Name)
	if sub == "" {
		sub = "@" // the apex, as the API spells it in paths
	}
	what := fmt.Sprintf("read %s %s", r.Name, r.Type)
	rep, err := c.do(ctx, http.MethodGet, "/domains/"+url.PathEscape(d.Name)+"/rrsets/"+url.PathEscape(sub)+"/"+r.Type+"/", nil, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	if rep.Status == http.StatusNotFound {
		return netip.Addr{}, nil
	}
	if rep.Status != http.StatusOK {
		return netip.Addr{}, desecFail(c, what, rep)
	}
	var rr desecRRset
	if err := c.decode(what, rep, &rr); err != nil {
		return netip.Addr{}, err
	}
	if len(rr.Records) == 0 {
		return netip.Addr{}, nil
	}
	return parseHeld("desec", r, rr.Records[0])
}
