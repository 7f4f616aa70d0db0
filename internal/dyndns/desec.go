package dyndns

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
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

	domains idCache[desecDomain] // by record name
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
	// deSEC's throttling message and Retry-After give the wait.
	return newAPI("desec", p.BaseURL, DeSECURL, "Authorization", "Token "+p.Token, p.Token, p.Client, jsonMessage)
}

// domain finds (once per record) the deSEC domain holding r and its
// minimum TTL.
func (p *DeSEC) domain(ctx context.Context, c *apiClient, r Record) (desecDomain, error) {
	key := zoneKey(r.Name)
	d, ok := p.domains.get(key)
	if ok {
		return d, nil
	}
	if p.Domain != "" {
		zone := zoneKey(p.Domain)
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
		if err := c.expect(what, rep, &d, http.StatusOK); err != nil {
			return d, err
		}
	} else {
		what := fmt.Sprintf("find the domain of %s %s", r.Name, r.Type)
		rep, err := c.do(ctx, http.MethodGet, "/domains/", url.Values{"owns_qname": {key}}, nil)
		if err != nil {
			return d, err
		}
		var ds []desecDomain
		if err := c.expect(what, rep, &ds, http.StatusOK); err != nil {
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
	p.domains.put(key, d)
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
	var got []desecRRset
	return c.expect(what, rep, &got, http.StatusOK, http.StatusCreated)
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
	var rr desecRRset
	if err := c.expect(what, rep, &rr, http.StatusOK); err != nil {
		return netip.Addr{}, err
	}
	return firstHeld("desec", r, rr.Records)
}
