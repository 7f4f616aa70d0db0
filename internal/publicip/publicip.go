// Package publicip learns the public address of the site's line: from the
// ISP box by UPnP IGD (SSDP, then WANIPConnection GetExternalIPAddress),
// from HTTP echo services that answer the caller's address, or from the
// gate's own interface (IPv6: a global address, or its prefix plus a fixed
// suffix). Each source has a timeout; an agreement rule picks the answer
// when sources disagree. A private, shared (100.64.0.0/10, CGNAT) or
// otherwise non-global answer is an error, never an address to publish.
package publicip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Source is one way to learn the public address.
type Source interface {
	Name() string
	Lookup(ctx context.Context) (netip.Addr, error)
}

// ErrCGNAT says the line has no public address of its own.
var ErrCGNAT = errors.New("carrier-grade NAT: the box's WAN address is not public, a DNS record on it would be useless (ask the ISP for a public IPv4 address, or publish IPv6 only)")

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Check refuses addresses that cannot be the line's public address.
func Check(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return errors.New("no address")
	case cgnat.Contains(a):
		return fmt.Errorf("%s: %w", a, ErrCGNAT)
	case a.IsPrivate():
		return fmt.Errorf("%s is a private address: %w", a, ErrCGNAT)
	case a.IsLoopback(), a.IsLinkLocalUnicast(), a.IsMulticast(), a.IsUnspecified(), !a.IsGlobalUnicast():
		return fmt.Errorf("%s is not a public unicast address", a)
	}
	return nil
}

// UPnP asks the ISP box (an Internet Gateway Device) for its WAN address.
// It remembers the box it found (SSDP discovery waits two seconds per
// service version) until a request to it fails. Only a device at the
// default gateway is asked (see discoverIGDs). Use a pointer.
type UPnP struct {
	// Gateways lists the default gateways (nil: the gate's routes).
	Gateways func() ([]netip.Addr, error)

	mu  sync.Mutex
	box func(ctx context.Context) (string, error) // GetExternalIPAddress of the box found
}

// Name implements Source.
func (*UPnP) Name() string { return "upnp" }

// Lookup implements Source.
func (u *UPnP) Lookup(ctx context.Context) (netip.Addr, error) {
	u.mu.Lock()
	box := u.box
	u.mu.Unlock()
	if box != nil {
		s, err := box(ctx)
		if err == nil {
			return parseIGD(s)
		}
		u.mu.Lock()
		u.box = nil // look for the box again
		u.mu.Unlock()
	}
	// Not logged here: the daemons that look up the box this way follow
	// it too (BoxEvents), whose discovery warns of an unfiltered search.
	found, err := discoverIGDs(ctx, u.Gateways, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	var errs []string
	for _, d := range found {
		s, err := d.external(ctx)
		if err == nil {
			u.mu.Lock()
			u.box = d.external
			u.mu.Unlock()
			return parseIGD(s)
		}
		errs = append(errs, err.Error())
	}
	return netip.Addr{}, fmt.Errorf("UPnP: %s", strings.Join(errs, "; "))
}

// parseIGD reads an IGD's answer. Boxes (miniupnpd among them) answer an
// empty address when their own WAN address is private or reserved: the
// line sits behind another NAT.
func parseIGD(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0.0.0.0" {
		return netip.Addr{}, fmt.Errorf("the box reports no public WAN address: %w", ErrCGNAT)
	}
	return parse(s)
}

func parse(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("malformed address %.64q", s)
	}
	return a.Unmap(), nil
}

// HTTP asks an echo service that answers the caller's address as text.
type HTTP struct {
	URL    string
	Family string // ipv4 or ipv6: which address family to connect with
	Client *http.Client
	// UserAgent identifies the gate to the service.
	UserAgent string
}

// Name implements Source.
func (h HTTP) Name() string { return "http " + h.URL }

// Lookup implements Source.
func (h HTTP) Lookup(ctx context.Context) (netip.Addr, error) {
	c := h.Client
	if c == nil {
		network := "tcp4"
		if h.Family == "ipv6" {
			network = "tcp6"
		}
		// A transport of its own for this lookup: without keep-alives,
		// or every poll would leave an idle connection (a descriptor and
		// two goroutines) behind in a transport nothing closes (found by
		// the soak, integration/site TestSideBySideSoakRSS: 1 each per
		// lookup until the server closes them).
		d := &net.Dialer{}
		c = &http.Client{Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return d.DialContext(ctx, network, addr) },
			DisableKeepAlives: true,
		}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	if h.UserAgent != "" {
		req.Header.Set("User-Agent", h.UserAgent)
	}
	resp, err := c.Do(req)
	if err != nil {
		return netip.Addr{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return netip.Addr{}, fmt.Errorf("%s answered %s", h.URL, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := parse(string(b))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", h.URL, err)
	}
	if want6 := h.Family == "ipv6"; a.Is6() != want6 {
		return netip.Addr{}, fmt.Errorf("%s answered %s, not an %s address", h.URL, a, map[bool]string{true: "IPv6", false: "IPv4"}[want6])
	}
	return a, nil
}

// Interface reads the gate's own global IPv6 address on an interface; with
// Suffix, it publishes the interface's /64 prefix plus that suffix (the
// address of another host of the LAN).
type Interface struct {
	Iface  string
	Suffix netip.Addr
	Addrs  func(name string) ([]netip.Prefix, error) // default: the interface's addresses
}

// Name implements Source.
func (i Interface) Name() string { return "interface " + i.Iface }

// Lookup implements Source.
func (i Interface) Lookup(ctx context.Context) (netip.Addr, error) {
	addrs := i.Addrs
	if addrs == nil {
		addrs = interfaceAddrs
	}
	ps, err := addrs(i.Iface)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, p := range ps {
		a := p.Addr()
		if !a.Is6() || a.Is4In6() || Check(a) != nil || a.IsPrivate() {
			continue
		}
		if !i.Suffix.IsValid() {
			return a, nil
		}
		return WithSuffix(p, i.Suffix), nil
	}
	return netip.Addr{}, fmt.Errorf("no global IPv6 address on %s", i.Iface)
}

// WithSuffix puts suffix's interface identifier (its low 64 bits) after
// p's /64 prefix.
func WithSuffix(p netip.Prefix, suffix netip.Addr) netip.Addr {
	a, s := p.Addr().As16(), suffix.As16()
	copy(a[8:], s[8:])
	return netip.AddrFrom16(a)
}

func interfaceAddrs(name string) ([]netip.Prefix, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	as, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// Result is one source's answer.
type Result struct {
	Source string
	Addr   netip.Addr
	Err    error
}

// Ask queries every source in parallel, each within timeout.
func Ask(ctx context.Context, sources []Source, timeout time.Duration) []Result {
	res := make([]Result, len(sources))
	done := make(chan struct{}, len(sources))
	for i, s := range sources {
		go func() {
			defer func() { done <- struct{}{} }()
			sctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			a, err := s.Lookup(sctx)
			if err == nil {
				err = Check(a)
			}
			res[i] = Result{Source: s.Name(), Addr: a, Err: err}
		}()
	}
	for range sources {
		<-done
	}
	return res
}

// Agree picks the address by rule: "first" (the first source, in the site
// file's order, that answered), "majority" (more than half of the
// answers), "all" (every source answered the same).
func Agree(rule string, res []Result) (netip.Addr, error) {
	var ok []Result
	var errs []string
	for _, r := range res {
		if r.Err != nil {
			if errors.Is(r.Err, ErrCGNAT) {
				return netip.Addr{}, fmt.Errorf("%s: %w", r.Source, r.Err)
			}
			errs = append(errs, r.Source+": "+r.Err.Error())
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return netip.Addr{}, fmt.Errorf("no source answered: %s", strings.Join(errs, "; "))
	}
	switch rule {
	case "", "first":
		return ok[0].Addr, nil
	case "all":
		if len(errs) > 0 {
			return netip.Addr{}, fmt.Errorf("not every source answered: %s", strings.Join(errs, "; "))
		}
		for _, r := range ok[1:] {
			if r.Addr != ok[0].Addr {
				return netip.Addr{}, fmt.Errorf("sources disagree: %s says %s, %s says %s", ok[0].Source, ok[0].Addr, r.Source, r.Addr)
			}
		}
		return ok[0].Addr, nil
	case "majority":
		count := map[netip.Addr]int{}
		for _, r := range ok {
			count[r.Addr]++
		}
		for _, r := range ok {
			if 2*count[r.Addr] > len(res) {
				return r.Addr, nil
			}
		}
		return netip.Addr{}, fmt.Errorf("no majority among %d sources", len(res))
	}
	return netip.Addr{}, fmt.Errorf("unknown agreement rule %q", rule)
}
