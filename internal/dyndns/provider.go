// Package dyndns keeps DNS records on the site's public address: it
// publishes through a provider (RFC 2136 with TSIG; the dyndns2 protocol
// with presets for OVH DynHost, No-IP, Dynu, Infomaniak; the Cloudflare,
// deSEC, Gandi LiveDNS and Hetzner DNS APIs), only
// when the address changed, remembering what it published on /perm so that
// a reboot does not re-send, and obeying the providers' rules: after a
// refusal that only a configuration change can fix, it stops updating that
// record until the site file changes; when the provider asks for a pause
// (dyndns2's 911 or dnserr: at least ten minutes; an API's 429 with its
// Retry-After) it waits that long; otherwise (5xx, network errors) it
// backs off exponentially with jitter.
package dyndns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Record is one published record.
type Record struct {
	Name string // FQDN
	Type string // A or AAAA
	TTL  time.Duration
}

// Key identifies a record in the state.
func (r Record) Key() string { return strings.ToLower(dns.Fqdn(r.Name)) + "/" + r.Type }

// Provider publishes records.
type Provider interface {
	Name() string
	Update(ctx context.Context, r Record, addr netip.Addr) error
	// Current returns the address the authoritative servers hold, where
	// the provider lets us ask (else ErrNoLookup).
	Current(ctx context.Context, r Record) (netip.Addr, error)
}

// ErrNoLookup says a provider cannot be asked what it holds.
var ErrNoLookup = errors.New("the provider offers no lookup")

// PermanentError is a refusal that retrying cannot fix: stop updating the
// record until the site file changes.
type PermanentError struct{ Reason string }

func (e *PermanentError) Error() string { return e.Reason }

// WaitError asks for a pause of at least After before the next attempt.
type WaitError struct {
	Reason string
	After  time.Duration
}

func (e *WaitError) Error() string { return e.Reason }

// RFC2136 updates a zone with DNS UPDATE signed with TSIG.
type RFC2136 struct {
	Server  string // host:port
	Zone    string
	KeyName string
	Secret  string // base64
	Alg     string // hmac-sha256, ...
	Timeout time.Duration
	// Now is the clock that signs updates (time.Now when nil).
	Now func() time.Time
}

// Name implements Provider.
func (p *RFC2136) Name() string { return "rfc2136" }

func (p *RFC2136) client() *dns.Client {
	t := p.Timeout
	if t == 0 {
		t = 5 * time.Second
	}
	return &dns.Client{Net: "tcp", Timeout: t, TsigSecret: map[string]string{dns.Fqdn(p.KeyName): p.Secret}}
}

func tsigAlg(a string) string {
	switch strings.ToLower(a) {
	case "hmac-sha1":
		return dns.HmacSHA1
	case "hmac-sha224":
		return dns.HmacSHA224
	case "hmac-sha384":
		return dns.HmacSHA384
	case "hmac-sha512":
		return dns.HmacSHA512
	}
	return dns.HmacSHA256
}

// Update implements Provider: delete the RRset, insert the new record.
func (p *RFC2136) Update(ctx context.Context, r Record, addr netip.Addr) error {
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", dns.Fqdn(r.Name), int(r.TTL.Seconds()), r.Type, addr))
	if err != nil {
		return fmt.Errorf("record %s: %v", r.Name, err)
	}
	m := new(dns.Msg).SetUpdate(dns.Fqdn(p.Zone))
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	m.SetTsig(dns.Fqdn(p.KeyName), tsigAlg(p.Alg), 300, now().Unix())
	resp, _, err := p.client().ExchangeContext(ctx, m, p.Server)
	if err != nil {
		// BADTIME is our clock, not our key: after a power cut the Pi
		// may sign before NTP answered. Retried, never blocking.
		if t := tsigOf(resp); t != nil && t.Error == dns.RcodeBadTime {
			return fmt.Errorf("%s refused the update's time (TSIG BADTIME: the gate's clock is more than 5 minutes off the server's; retrying)", p.Server)
		}
		// A server that does not know our key answers NOTAUTH with a TSIG
		// error (BADSIG, BADKEY), which fails verification here.
		if errors.Is(err, dns.ErrAuth) || errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrSecret) || errors.Is(err, dns.ErrKeyAlg) {
			return &PermanentError{Reason: fmt.Sprintf("%s refused the TSIG key %s (NOTAUTH: wrong secret, name or algorithm, or a clock off by more than 5 minutes): %v", p.Server, p.KeyName, err)}
		}
		return fmt.Errorf("DNS UPDATE to %s: %w", p.Server, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNotAuth, dns.RcodeRefused, dns.RcodeNotZone, dns.RcodeBadSig, dns.RcodeBadKey:
		return &PermanentError{Reason: fmt.Sprintf("%s answered %s to the update of %s %s (key %s, zone %s)", p.Server, dns.RcodeToString[resp.Rcode], r.Name, r.Type, p.KeyName, p.Zone)}
	}
	return fmt.Errorf("%s answered %s to the update of %s", p.Server, dns.RcodeToString[resp.Rcode], r.Name)
}

// tsigOf returns the TSIG record of an answer, if it has one.
func tsigOf(m *dns.Msg) *dns.TSIG {
	if m == nil {
		return nil
	}
	return m.IsTsig()
}

// Current implements Provider: ask the server itself.
func (p *RFC2136) Current(ctx context.Context, r Record) (netip.Addr, error) {
	q := new(dns.Msg).SetQuestion(dns.Fqdn(r.Name), dns.StringToType[r.Type])
	c := p.client()
	c.TsigSecret = nil
	resp, _, err := c.ExchangeContext(ctx, q, p.Server)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rr := range resp.Answer {
		switch v := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(v.A.To4())
			return a, nil
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(v.AAAA)
			return a, nil
		}
	}
	return netip.Addr{}, nil
}

// Presets are dyndns2 endpoints of known providers.
var Presets = map[string]string{
	"ovh":        "https://www.ovh.com/nic/update?system=dyndns",
	"noip":       "https://dynupdate.no-ip.com/nic/update",
	"dynu":       "https://api.dynu.com/nic/update",
	"infomaniak": "https://infomaniak.com/nic/update",
	"dyndns":     "https://members.dyndns.org/nic/update",
}

// DynDNS2 speaks the dyndns2 protocol: GET /nic/update?hostname=&myip=
// with basic auth and a unique User-Agent.
type DynDNS2 struct {
	URL       string // the update URL (a preset's or the site file's)
	User      string
	Password  string
	UserAgent string
	Client    *http.Client
}

// Name implements Provider.
func (p *DynDNS2) Name() string { return "dyndns2" }

// Update implements Provider.
func (p *DynDNS2) Update(ctx context.Context, r Record, addr netip.Addr) error {
	u, err := url.Parse(p.URL)
	if err != nil {
		return &PermanentError{Reason: fmt.Sprintf("update URL %q: %v", p.URL, err)}
	}
	if !strings.HasSuffix(u.Path, "/nic/update") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/nic/update"
	}
	q := u.Query()
	q.Set("hostname", strings.TrimSuffix(r.Name, "."))
	q.Set("myip", addr.String())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(p.User, p.Password)
	req.Header.Set("User-Agent", p.UserAgent)
	resp, err := sendSecret(p.Client, req)
	if err != nil {
		var perm *PermanentError
		if errors.As(err, &perm) {
			return err
		}
		return fmt.Errorf("dyndns2 %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return dyndns2Reply(resp.StatusCode, string(b))
}

// dyndns2Reply maps the protocol's answers to outcomes.
func dyndns2Reply(status int, body string) error {
	f := strings.Fields(body)
	code := ""
	if len(f) > 0 {
		code = f[0]
	}
	switch code {
	case "good", "nochg":
		return nil
	case "badauth", "nohost", "notfqdn", "abuse", "badagent", "!donator", "numhost", "badrequest", "!yours":
		return &PermanentError{Reason: fmt.Sprintf("the provider answered %q: fix the site file (credentials, record name) before it is tried again", code)}
	case "911", "dnserr":
		return &WaitError{Reason: fmt.Sprintf("the provider answered %q (server-side trouble)", code), After: 10 * time.Minute}
	}
	if status == http.StatusUnauthorized {
		return &PermanentError{Reason: "the provider refused the credentials (HTTP 401)"}
	}
	return fmt.Errorf("unexpected dyndns2 answer (HTTP %d): %.80q", status, body)
}

// Current implements Provider (dyndns2 has no lookup).
func (p *DynDNS2) Current(context.Context, Record) (netip.Addr, error) {
	return netip.Addr{}, ErrNoLookup
}
