package dyndns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// maxAPIBody bounds what is read of an API answer: a DNS API never needs
// more for one zone lookup or one record listing page.
const maxAPIBody = 4 << 20

// apiClient is the HTTP plumbing the JSON-API providers share: one base URL,
// one authorization header, the package's User-Agent, bounded answers.
type apiClient struct {
	provider string // "cloudflare", ... : named in every error
	base     string // base URL without a trailing slash
	header   string // the authorization header's name
	value    string // and value (holds the token: never logged)
	secret   string // the token, redacted from any message the API echoes
	client   *http.Client
	// message extracts the API's own words from an error answer ("" when
	// it has none), and wait is the pause after a 429 without Retry-After.
	message func([]byte) string
	wait    time.Duration
}

// newAPI is the client of one provider: base ("" = def) without its
// trailing slash, the given authorization header, message reading the
// provider's error answers, and a minute's wait after a 429 without
// Retry-After.
func newAPI(provider, base, def, header, value, secret string, hc *http.Client, message func([]byte) string) *apiClient {
	if base == "" {
		base = def
	}
	return &apiClient{provider: provider, base: strings.TrimSuffix(base, "/"), header: header, value: value, secret: secret,
		client: hc, message: message, wait: time.Minute}
}

// zoneKey is a zone or name as the providers compare it: lower case,
// without the final dot.
func zoneKey(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// apiReply is one HTTP answer.
type apiReply struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends one request. path is appended to the base URL as is (callers
// escape its elements); body, when not nil, is sent as JSON. Only transport
// failures are errors here: the status is the caller's to judge.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body any) (*apiReply, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s: encoding the request: %v", c.provider, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, &PermanentError{Reason: fmt.Sprintf("%s: base URL %q: %v", c.provider, c.base, err)}
	}
	req.Header.Set(c.header, c.value)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := sendSecret(c.client, req, c.header)
	if err != nil {
		var perm *PermanentError
		if errors.As(err, &perm) {
			return nil, err
		}
		// url.Error repeats the URL: it holds no secret (tokens travel
		// in headers only).
		return nil, fmt.Errorf("%s: %s %s: %w", c.provider, method, redactURL(u), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: reading the answer (HTTP %d): %w", c.provider, method, redactURL(u), resp.StatusCode, err)
	}
	return &apiReply{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// sendSecret sends req, which carries credentials (basic auth or the
// headers named), with hc (nil: a 15 s timeout): over https only (an
// http:// URL is a *PermanentError: the site file must change), never
// following a redirect to http, and dropping the credentials when a
// redirect leads to another host (or port).
func sendSecret(hc *http.Client, req *http.Request, headers ...string) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, &PermanentError{Reason: fmt.Sprintf("refusing to send credentials to %s over %s: the provider's URL must be https://", req.URL.Host, req.URL.Scheme)}
	}
	c := http.Client{Timeout: 15 * time.Second}
	if hc != nil {
		c = *hc
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if r.URL.Scheme != "https" {
			return fmt.Errorf("refusing a redirect to %s: credentials travel over https only", redactURL(r.URL.String()))
		}
		if !strings.EqualFold(r.URL.Host, via[0].URL.Host) {
			r.Header.Del("Authorization")
			for _, h := range headers {
				r.Header.Del(h)
			}
		}
		if next != nil {
			return next(r, via)
		}
		return nil
	}
	return c.Do(req)
}

func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		p.User = nil
		return p.String()
	}
	return u
}

// decode parses a successful answer into v, with an error that says which
// provider answered what to which request.
func (c *apiClient) decode(what string, rep *apiReply, v any) error {
	if err := json.Unmarshal(rep.Body, v); err != nil {
		return fmt.Errorf("%s: %s: malformed JSON answer (HTTP %d): %v: %s", c.provider, what, rep.Status, err, c.snippet(rep.Body))
	}
	return nil
}

// expect decodes rep into v when its status is one of ok, else returns
// c.fail's error.
func (c *apiClient) expect(what string, rep *apiReply, v any, ok ...int) error {
	if !slices.Contains(ok, rep.Status) {
		return c.fail(what, rep)
	}
	return c.decode(what, rep, v)
}

// fail is failure with the API's own message and rate-limit wait.
func (c *apiClient) fail(what string, rep *apiReply) error {
	return c.failure(what, rep, c.apiMessage(rep.Body), c.wait)
}

func (c *apiClient) apiMessage(b []byte) string {
	if c.message == nil {
		return ""
	}
	return c.message(b)
}

// redact removes the token from a message an API wrote.
func (c *apiClient) redact(s string) string {
	if c.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, c.secret, "[token]")
}

// clean makes an API's text fit for a log line: token-free, printable,
// one line, at most 200 characters.
func (c *apiClient) clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, c.redact(s))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

// snippet is a short, quoted excerpt of an answer body.
func (c *apiClient) snippet(b []byte) string {
	if s := c.clean(string(b)); s != "" {
		return strconv.Quote(s)
	}
	return "(empty body)"
}

// failure turns a non-2xx answer into the error that drives the updater:
//   - 401 and 403 (and auth says so): the token is wrong or lacks a right;
//     a *PermanentError (only a new token in the site's secrets fixes it);
//   - 429: a *WaitError honouring Retry-After (else defWait);
//   - other 4xx but 408 and 409: the request built from the site file is
//     refused (a name outside the zone, a TTL below the minimum...): a
//     *PermanentError;
//   - 5xx and the rest: a plain error (exponential backoff).
//
// msg is the API's own message, what the operation ("update home.example.org
// A"). The token is never part of the message.
func (c *apiClient) failure(what string, rep *apiReply, msg string, defWait time.Duration) error {
	msg = c.clean(msg)
	if msg == "" {
		msg = c.snippet(rep.Body)
	}
	text := fmt.Sprintf("%s: %s: HTTP %d: %s", c.provider, what, rep.Status, msg)
	switch s := rep.Status; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return &PermanentError{Reason: text + " (check the token and its rights)"}
	case s == http.StatusTooManyRequests:
		return &WaitError{Reason: text + " (rate limited)", After: retryAfter(rep.Header, time.Now(), defWait)}
	case s == http.StatusRequestTimeout || s == http.StatusConflict:
		return errors.New(text)
	case s >= 400 && s < 500:
		return &PermanentError{Reason: text}
	}
	return errors.New(text)
}

// gone is the error for a 404 on a record or zone id the provider looked
// up itself: it changed meanwhile, so the next attempt looks again.
func (c *apiClient) gone(what string, rep *apiReply) error {
	msg := c.clean(c.apiMessage(rep.Body))
	if msg == "" {
		msg = c.snippet(rep.Body)
	}
	return fmt.Errorf("%s: %s: HTTP %d: %s (changed meanwhile: looked up again next time)", c.provider, what, rep.Status, msg)
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), else
// def; never less than a second nor more than a day.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	d := def
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			d = time.Duration(min(n, 86400)) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	}
	return min(max(d, time.Second), 24*time.Hour)
}

// relName is fqdn relative to zone: "" for the apex, "home" for
// home.example.org in example.org. Case and final dots are ignored.
func relName(fqdn, zone string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(fqdn, "."))
	z := strings.ToLower(strings.TrimSuffix(zone, "."))
	switch {
	case z == "":
		return "", fmt.Errorf("no zone for %s", fqdn)
	case n == z:
		return "", nil
	case strings.HasSuffix(n, "."+z):
		return strings.TrimSuffix(n, "."+z), nil
	}
	return "", fmt.Errorf("%s is outside the zone %s", fqdn, zone)
}

// ttlSeconds is the TTL to send: r's, raised to the provider's minimum.
func ttlSeconds(ttl, least time.Duration) int {
	return int(max(ttl, least).Round(time.Second) / time.Second)
}

// checkType refuses record types other than A and AAAA, and an address of
// the other family.
func checkType(provider string, r Record, addr netip.Addr) error {
	switch {
	case r.Type == "A" && addr.Is4():
	case r.Type == "AAAA" && addr.Is6() && !addr.Is4In6():
	case r.Type != "A" && r.Type != "AAAA":
		return &PermanentError{Reason: fmt.Sprintf("%s: record %s: type %q (A or AAAA)", provider, r.Name, r.Type)}
	default:
		return fmt.Errorf("%s: record %s %s: %s is not of that family", provider, r.Name, r.Type, addr)
	}
	return nil
}

// firstHeld is the first of the values a provider holds for r, the zero
// address when there is none.
func firstHeld(provider string, r Record, values []string) (netip.Addr, error) {
	if len(values) == 0 {
		return netip.Addr{}, nil
	}
	return parseHeld(provider, r, values[0])
}

// parseHeld reads an address a provider holds for r.
func parseHeld(provider string, r Record, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: record %s %s holds %.60q, not an address", provider, r.Name, r.Type, s)
	}
	return a, nil
}

// idCache remembers what a provider looked up (zone ids, domains), so
// that an address change costs one or two requests, not three.
type idCache[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

func (c *idCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// drop forgets k: after a failure, the next attempt looks it up again
// (a zone deleted and added again has a new id).
func (c *idCache[V]) drop(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

func (c *idCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]V{}
	}
	c.m[k] = v
}

// jsonMessage flattens an error body of any JSON shape into its strings,
// "field: text; ...", e.g. deSEC's {"ttl": ["Ensure this value is greater
// than or equal to 3600."]}. It returns "" for a body that is not JSON.
func jsonMessage(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	var parts []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if len(parts) >= 8 {
			return
		}
		switch t := v.(type) {
		case string:
			if prefix != "" {
				t = prefix + ": " + t
			}
			parts = append(parts, t)
		case []any:
			for _, e := range t {
				walk(prefix, e)
			}
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				switch k {
				case "detail", "message", "non_field_errors", "description":
					p = prefix // the text itself, not a field name
				}
				walk(p, t[k])
			}
		}
	}
	walk("", v)
	s := strings.Join(parts, "; ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
