package bastion

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testServer(t testing.TB) *Server {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	s, err := New(Config{
		HostKey: signer,
		Users: []User{
			{Name: "admin", Allow: []Rule{{Host: "*", Port: 22}, {Host: "compute-1", Port: 6443}}},
			{Name: "ops", Allow: []Rule{{Host: "ceph-1"}, {Host: "192.168.1.50", Port: 443}}},
		},
		Hosts: map[string]netip.Addr{"ceph-1": netip.MustParseAddr("192.168.1.11"), "compute-1": netip.MustParseAddr("192.168.1.21")},
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "ceph-1.home.example.org":
				return []netip.Addr{netip.MustParseAddr("192.168.1.11")}, nil
			case "evil.example.net":
				return []netip.Addr{netip.MustParseAddr("203.0.113.66")}, nil
			}
			return nil, errors.New("no such host")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecide(t *testing.T) {
	s := testServer(t)
	for _, tc := range []struct {
		user, host string
		port       int
		want       string // dialled address, or "" for refused
	}{
		{"admin", "ceph-1", 22, "192.168.1.11:22"},
		{"admin", "CEPH-1", 22, "192.168.1.11:22"},
		{"admin", "192.168.1.21", 22, "192.168.1.21:22"},
		{"admin", "::ffff:192.168.1.21", 22, "192.168.1.21:22"},
		{"admin", "compute-1", 6443, "192.168.1.21:6443"},
		{"admin", "ceph-1", 6443, ""},
		{"admin", "192.168.1.50", 22, ""},                           // a LAN address that is no site host
		{"admin", "ceph-1.home.example.org", 22, "192.168.1.11:22"}, // resolved, checked by address
		{"admin", "evil.example.net", 22, ""},
		{"admin", "nosuch.example", 22, ""},
		{"ops", "ceph-1", 8080, "192.168.1.11:8080"},
		{"ops", "compute-1", 22, ""},
		{"ops", "192.168.1.50", 443, "192.168.1.50:443"},
	} {
		u := s.users[tc.user]
		ap, err := s.Decide(context.Background(), u, tc.host, tc.port)
		got := ""
		if err == nil {
			got = ap.String()
		}
		if got != tc.want {
			t.Errorf("%s → %s:%d: got %q (%v), want %q", tc.user, tc.host, tc.port, got, err, tc.want)
		}
	}
}

func TestParseRule(t *testing.T) {
	for in, want := range map[string]Rule{"ceph-1:22": {"ceph-1", 22}, "*:*": {"*", 0}, "[::1]:443": {"::1", 443}} {
		if got, err := ParseRule(in); err != nil || got != want {
			t.Errorf("ParseRule(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"ceph-1", ":22", "x:0", "x:99999", "x:http"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
}

func TestBanList(t *testing.T) {
	b := newBanList(3)
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("10.0.0.1")
	for i := 1; i <= 4; i++ {
		if banned := b.fail(a, 5, time.Minute, now); banned {
			t.Fatalf("banned after %d failures", i)
		}
	}
	if !b.fail(a, 5, time.Minute, now) || !b.banned(a, now) {
		t.Fatal("not banned after 5 failures")
	}
	if b.banned(a, now.Add(2*time.Minute)) {
		t.Error("ban did not expire")
	}
	// Bounded: a flood of sources never grows the list past its size,
	// and never pushes out a ban in force.
	b.fail(a, 5, time.Minute, now.Add(2*time.Minute)) // a new window, one failure
	for i := 0; i < 4; i++ {
		b.fail(a, 5, time.Minute, now.Add(2*time.Minute))
	}
	for i := 0; i < 100; i++ {
		b.fail(netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), 5, time.Minute, now.Add(2*time.Minute+time.Second))
	}
	if len(b.m) > 3 {
		t.Errorf("ban list holds %d sources, max 3", len(b.m))
	}
	if !b.banned(a, now.Add(2*time.Minute+time.Second)) {
		t.Error("a flood of sources evicted a ban in force")
	}
	// A success forgets failures, not a ban.
	c := netip.MustParseAddr("10.0.0.3")
	b2 := newBanList(10)
	for i := 0; i < 4; i++ {
		b2.fail(c, 5, time.Minute, now)
	}
	b2.succeed(c, now)
	if b2.fail(c, 5, time.Minute, now) {
		t.Error("failures before a success still counted")
	}
	for i := 0; i < 4; i++ {
		b2.fail(c, 5, time.Minute, now)
	}
	b2.succeed(c, now)
	if !b2.banned(c, now) {
		t.Error("a success lifted a ban")
	}
}

func TestParseDirectTCPIP(t *testing.T) {
	good := ssh.Marshal(directTCPIP{Host: "ceph-1", Port: 22, OriginHost: "203.0.113.5", OriginPort: 50000})
	if h, p, err := ParseDirectTCPIP(good); err != nil || h != "ceph-1" || p != 22 {
		t.Errorf("got %q %d %v", h, p, err)
	}
	for _, bad := range [][]byte{nil, good[:5], ssh.Marshal(directTCPIP{Host: "x", Port: 70000}), ssh.Marshal(directTCPIP{Host: "", Port: 22})} {
		if _, _, err := ParseDirectTCPIP(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
}

func FuzzParseDirectTCPIP(f *testing.F) {
	f.Add(ssh.Marshal(directTCPIP{Host: "ceph-1", Port: 22, OriginHost: "1.2.3.4", OriginPort: 1}))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := ParseDirectTCPIP(b)
		if err == nil && (p < 1 || p > 65535 || h == "") {
			t.Fatalf("accepted %q:%d", h, p)
		}
	})
}

// FuzzDecide feeds a direct-tcpip payload, as a client sends it, through
// parsing and the allow list: whatever the bytes, an accepted destination
// is the port asked for, on an address one of the user's rules names.
func FuzzDecide(f *testing.F) {
	for _, d := range []directTCPIP{
		{Host: "ceph-1", Port: 22}, {Host: "CEPH-1", Port: 8080}, {Host: "192.168.1.50", Port: 443},
		{Host: "::ffff:192.168.1.11", Port: 22}, {Host: "ceph-1.home.example.org", Port: 22},
		{Host: "evil.example.net", Port: 22}, {Host: "[192.168.1.11]", Port: 22}, {Host: "192.168.1.011", Port: 22},
	} {
		f.Add(ssh.Marshal(d), "ops")
		f.Add(ssh.Marshal(d), "admin")
	}
	s := testServer(f)
	f.Fuzz(func(t *testing.T, payload []byte, user string) {
		u := s.users[user]
		if u == nil {
			return
		}
		host, port, err := ParseDirectTCPIP(payload)
		if err != nil {
			return
		}
		ap, err := s.Decide(context.Background(), u, host, port)
		if err != nil {
			return
		}
		if int(ap.Port()) != port {
			t.Fatalf("%s:%d → dial %s: another port", host, port, ap)
		}
		ok := false
		for _, r := range u.Allow {
			if r.Port != 0 && r.Port != port {
				continue
			}
			for name, a := range s.cfg.Hosts {
				if a == ap.Addr() && (r.Host == "*" || r.Host == name) {
					ok = true
				}
			}
			if r.Host == ap.Addr().String() {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("%s %s:%d → dial %s, which no rule of the user allows", user, host, port, ap)
		}
	})
}

// FuzzParseRule: any accepted rule has a port in range and a host.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"ceph-1:22", "*:*", "[::1]:443", "192.168.1.11:0", "x:", ":22", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err == nil && (r.Port < 0 || r.Port > 65535 || r.Host == "") {
			t.Fatalf("ParseRule(%q) = %+v", s, r)
		}
	})
}
