package publicip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		ok    bool
		cgnat bool
	}{
		{"203.0.113.7", true, false},
		{"2001:db8::1", true, false},
		{"100.64.1.2", false, true},
		{"100.127.255.255", false, true},
		{"10.1.2.3", false, true},
		{"192.168.1.1", false, true},
		{"fd00::1", false, true},
		{"127.0.0.1", false, false},
		{"169.254.1.1", false, false},
		{"fe80::1", false, false},
		{"224.0.0.1", false, false},
		{"0.0.0.0", false, false},
		{"::ffff:203.0.113.7", true, false},
	} {
		err := Check(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.ok || errors.Is(err, ErrCGNAT) != tc.cgnat {
			t.Errorf("Check(%s) = %v, want ok=%v cgnat=%v", tc.addr, err, tc.ok, tc.cgnat)
		}
	}
	if err := Check(netip.Addr{}); err == nil {
		t.Error("Check(zero) = nil")
	}
}

func TestParseIGD(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.2":   "203.0.113.2",
		" 203.0.113.2 ": "203.0.113.2",
		"":              "cgnat",
		"0.0.0.0":       "cgnat",
		"not an addr":   "error",
		"fe80::1%eth0":  "error",
	} {
		a, err := parseIGD(in)
		got := a.String()
		switch {
		case errors.Is(err, ErrCGNAT):
			got = "cgnat"
		case err != nil:
			got = "error"
		}
		if got != want {
			t.Errorf("parseIGD(%q) = %s (%v), want %s", in, got, err, want)
		}
	}
}

func TestHTTP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family string
		status int
		body   string
		want   string // address, or an error substring
	}{
		{"v4", "ipv4", 200, "203.0.113.9\n", "203.0.113.9"},
		{"v6", "ipv6", 200, "2001:db8::9", "2001:db8::9"},
		{"mapped", "ipv4", 200, "::ffff:203.0.113.9", "203.0.113.9"},
		{"wrong family", "ipv6", 200, "203.0.113.9", "not an IPv6 address"},
		{"garbage", "ipv4", 200, "<html>hello</html>", "malformed address"},
		{"too long", "ipv4", 200, strings.Repeat("1", 10000), "malformed address"},
		{"server error", "ipv4", 503, "203.0.113.9", "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ua string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ua = r.UserAgent()
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			h := HTTP{URL: srv.URL, Family: tc.family, Client: srv.Client(), UserAgent: "gate-test/1"}
			a, err := h.Lookup(context.Background())
			got := a.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("Lookup = %q, want %q", got, tc.want)
			}
			if ua != "gate-test/1" {
				t.Errorf("User-Agent %q", ua)
			}
		})
	}
}

func TestHTTPTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	res := Ask(context.Background(), []Source{HTTP{URL: srv.URL, Client: srv.Client()}}, 100*time.Millisecond)
	if res[0].Err == nil {
		t.Fatalf("a hanging source answered %s", res[0].Addr)
	}
}

func TestInterface(t *testing.T) {
	addrs := func(string) ([]netip.Prefix, error) {
		return []netip.Prefix{
			netip.MustParsePrefix("192.168.1.2/24"),
			netip.MustParsePrefix("fe80::1/64"),
			netip.MustParsePrefix("fd00::2/64"),
			netip.MustParsePrefix("2001:db8:1:2::5/64"),
		}, nil
	}
	i := Interface{Iface: "eth0", Addrs: addrs}
	if a, err := i.Lookup(context.Background()); err != nil || a.String() != "2001:db8:1:2::5" {
		t.Errorf("Lookup = %s, %v", a, err)
	}
	i.Suffix = netip.MustParseAddr("::1:2:3:4")
	if a, err := i.Lookup(context.Background()); err != nil || a.String() != "2001:db8:1:2:1:2:3:4" {
		t.Errorf("Lookup with suffix = %s, %v", a, err)
	}
	none := Interface{Iface: "eth0", Addrs: func(string) ([]netip.Prefix, error) {
		return []netip.Prefix{netip.MustParsePrefix("fe80::1/64")}, nil
	}}
	if _, err := none.Lookup(context.Background()); err == nil || !strings.Contains(err.Error(), "no global IPv6") {
		t.Errorf("no global address: %v", err)
	}
}

func TestAgree(t *testing.T) {
	a, b := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	ok := func(src string, x netip.Addr) Result { return Result{Source: src, Addr: x} }
	fail := func(src string) Result { return Result{Source: src, Err: errors.New("timeout")} }
	cg := Result{Source: "upnp", Err: fmt.Errorf("x: %w", ErrCGNAT)}
	for _, tc := range []struct {
		rule string
		res  []Result
		want string // address or error substring
	}{
		{"first", []Result{fail("s1"), ok("s2", b), ok("s3", a)}, b.String()},
		{"", []Result{ok("s1", a)}, a.String()},
		{"first", []Result{fail("s1"), fail("s2")}, "no source answered"},
		{"all", []Result{ok("s1", a), ok("s2", a)}, a.String()},
		{"all", []Result{ok("s1", a), ok("s2", b)}, "sources disagree"},
		{"all", []Result{ok("s1", a), fail("s2")}, "not every source answered"},
		{"majority", []Result{ok("s1", a), ok("s2", b), ok("s3", b)}, b.String()},
		{"majority", []Result{ok("s1", a), ok("s2", b), fail("s3")}, "no majority"},
		{"majority", []Result{ok("s1", a), ok("s2", a), fail("s3")}, a.String()},
		{"first", []Result{ok("s1", a), cg}, "carrier-grade NAT"},
		{"sometimes", []Result{ok("s1", a)}, "unknown agreement rule"},
	} {
		got, err := Agree(tc.rule, tc.res)
		s := got.String()
		if err != nil {
			s = err.Error()
		}
		if !strings.Contains(s, tc.want) {
			t.Errorf("Agree(%q, %v) = %q, want %q", tc.rule, tc.res, s, tc.want)
		}
	}
}

// FuzzParse: answers from the network (an echo service's body, an IGD's
// NewExternalIPAddress) never crash the parser, and an accepted answer is
// an address.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"203.0.113.2", "", "0.0.0.0", "::ffff:1.2.3.4", "2001:db8::1%eth0", "1.2.3.4\n\n", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := parseIGD(s); err == nil && !a.IsValid() {
			t.Fatalf("parseIGD(%q) accepted an invalid address", s)
		}
		if a, err := parse(s); err == nil && (!a.IsValid() || a.Zone() != "") {
			t.Fatalf("parse(%q) accepted an invalid address", s)
		}
	})
}

// Lookups with the source's own client leave no connection open: an echo
// server that keeps idle connections (as Go's does by default) sees every
// one closed.
func TestHTTPLeavesNoConnection(t *testing.T) {
	var open atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "203.0.113.5")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	h := HTTP{URL: srv.URL, Family: "ipv4"}
	for range 5 {
		if a, err := h.Lookup(context.Background()); err != nil || a != netip.MustParseAddr("203.0.113.5") {
			t.Fatalf("Lookup: %v, %v", a, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n != 0 {
		t.Errorf("%d connections still open after 5 lookups", n)
	}
}
