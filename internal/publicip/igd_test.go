package publicip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"gate/internal/netnstest"
)

// TestOnGateway: a device's LOCATION is the box's only when its host is
// one of the default routes' gateways.
func TestOnGateway(t *testing.T) {
	gw := []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fe80::1")}
	for _, tc := range []struct {
		name string
		loc  string
		gws  []netip.Addr
		want bool
	}{
		{"the box", "http://192.168.1.1:5000/rootDesc.xml", gw, true},
		{"a LAN host answering as an IGD", "http://192.168.1.66:5000/rootDesc.xml", gw, false},
		{"the box over IPv6 link-local", "http://[fe80::1%25eth0]:5000/d.xml", gw, true},
		{"the box's IPv4 address mapped", "http://[::ffff:192.168.1.1]:5000/d.xml", gw, true},
		{"a name, not an address", "http://box.lan:5000/d.xml", gw, false},
		{"no default route", "http://192.168.1.1:5000/rootDesc.xml", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if got := onGateway(u, tc.gws); got != tc.want {
				t.Errorf("onGateway(%s, %v) = %v, want %v", tc.loc, tc.gws, got, tc.want)
			}
		})
	}
}

// TestGateways: in a namespace of its own, the default routes' gateways
// (IPv4, IPv6, and each of a multipath route's) and no other route's.
func TestGateways(t *testing.T) {
	netnstest.Enter(t)
	for _, args := range [][]string{
		{"link", "add", "lan0", "type", "veth", "peer", "name", "lan1"},
		{"link", "set", "lan1", "up"},
		{"link", "set", "lan0", "up"},
		{"addr", "add", "10.77.0.2/24", "dev", "lan0"},
		{"-6", "addr", "add", "2001:db8::2/64", "dev", "lan0", "nodad"},
		{"route", "add", "default", "via", "10.77.0.1"},
		{"route", "add", "198.51.100.0/24", "via", "10.77.0.9"},
		{"-6", "route", "add", "default", "nexthop", "via", "2001:db8::1", "nexthop", "via", "2001:db8::3"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	gws, err := Gateways()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	if got, want := fmt.Sprint(gws), "[10.77.0.1 2001:db8::1 2001:db8::3]"; got != want {
		t.Errorf("Gateways() = %s, want %s", got, want)
	}
}

// TestUnfilteredSearchWarned: when the kernel refuses the socket filter,
// the discovery says so, once however many searches it made, and still
// names who answered; a filtered search says nothing.
func TestUnfilteredSearchWarned(t *testing.T) {
	gws := func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.168.1.1")}, nil }
	for _, tc := range []struct {
		name     string
		refused  error // the filter's refusal, as search reports it
		searches int
		warnings int
	}{
		{"filter refused", errors.New("SSDP: filtering answers by source: protocol not available"), 3, 1},
		{"filter attached", nil, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged strings.Builder
			searches := 0
			fake := func(ctx context.Context, st string, gws []netip.Addr, wait time.Duration, onlyGateways bool) (answers, error) {
				searches++
				a := answers{others: []string{"192.168.1.66"}}
				if onlyGateways {
					a.unfiltered = tc.refused
				}
				return a, nil
			}
			_, err := discoverWith(t.Context(), gws, slog.New(slog.NewTextHandler(&logged, nil)), fake)
			if err == nil || !strings.Contains(err.Error(), "192.168.1.66") {
				t.Errorf("discovery: %v, want the other answerer named", err)
			}
			if searches != tc.searches {
				t.Errorf("%d searches, want %d", searches, tc.searches)
			}
			if got := strings.Count(logged.String(), UnfilteredWarning); got != tc.warnings {
				t.Errorf("%d warnings, want %d; log:\n%s", got, tc.warnings, logged.String())
			}
			if tc.warnings > 0 && !strings.Contains(logged.String(), "protocol not available") {
				t.Errorf("the warning does not say why:\n%s", logged.String())
			}
		})
	}
}

// TestUPnPNoDefaultRoute: without a default route there is no box to ask,
// and the error says so (not that the box was ignored).
func TestUPnPNoDefaultRoute(t *testing.T) {
	u := &UPnP{Gateways: func() ([]netip.Addr, error) { return nil, nil }}
	if _, err := u.Lookup(t.Context()); err == nil || !strings.Contains(err.Error(), "no default route") {
		t.Errorf("Lookup without a default route: %v", err)
	}
}

// TestSearch: the box (127.0.0.1, the gateway) answers the M-SEARCH
// among garbage; a LAN host (127.0.0.2) floods answers naming the box's
// own address in their LOCATION. Only the box's answer counts. Hearing
// everyone, the other is named once, never parsed; then the box answers
// first, since a flood can fill the socket's buffer and the kernel drops
// what comes after. Filtered, the flood comes first and is dropped by
// the kernel, unheard.
func TestSearch(t *testing.T) {
	const st = "urn:schemas-upnp-org:service:WANIPConnection:1"
	for _, tc := range []struct {
		onlyGateways bool
		others       string
	}{
		{false, "[127.0.0.2]"},
		{true, "[]"},
	} {
		t.Run(fmt.Sprintf("onlyGateways=%v", tc.onlyGateways), func(t *testing.T) {
			box, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer box.Close()
			rogue, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
			if err != nil {
				t.Fatal(err)
			}
			defer rogue.Close()
			answer := func(loc, st string) []byte {
				return []byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: " + loc + "\r\nST: " + st + "\r\nUSN: uuid:x::" + st + "\r\n\r\n")
			}
			go func() {
				buf := make([]byte, 2048)
				n, from, err := box.ReadFromUDPAddrPort(buf)
				if err != nil || !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1\r\n") || !strings.Contains(string(buf[:n]), "\r\nST: "+st+"\r\n") {
					t.Errorf("the box got %q, %v", buf[:n], err)
					return
				}
				flood := func() {
					for range 1000 {
						rogue.WriteToUDPAddrPort(answer("http://127.0.0.1:5000/forged.xml", st), from)
					}
				}
				if tc.onlyGateways {
					flood()
				}
				box.WriteToUDPAddrPort([]byte("garbage"), from)
				box.WriteToUDPAddrPort(answer("http://127.0.0.1:5000/other.xml", "upnp:rootdevice"), from)
				box.WriteToUDPAddrPort(answer("http://127.0.0.1:5000/rootDesc.xml", st), from)
				if !tc.onlyGateways {
					flood()
				}
				box.WriteToUDPAddrPort(answer("http://127.0.0.1:5000/rootDesc.xml", st), from)
			}()
			gws := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
			a, err := searchAt(t.Context(), box.LocalAddr().(*net.UDPAddr).AddrPort(), st, gws, time.Second, tc.onlyGateways)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(a.boxes); got != "[http://127.0.0.1:5000/rootDesc.xml]" {
				t.Errorf("boxes %s", got)
			}
			if got := fmt.Sprint(a.others); got != tc.others {
				t.Errorf("others %s, want %s", got, tc.others)
			}
			if a.unfiltered != nil {
				t.Errorf("the search was unfiltered: %v", a.unfiltered)
			}
		})
	}
}

// TestKeepOnlyFrom: with the filter, a flood from a LAN host (127.0.0.2)
// sent before anyone reads leaves the socket's buffer free for the
// gateway's (127.0.0.1) datagram, and none of the flood's is queued.
// Without it, the flood fills the buffer and the kernel drops the
// gateway's.
func TestKeepOnlyFrom(t *testing.T) {
	gws := []netip.Addr{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("127.0.0.1")}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := keepOnlyFrom(c, gws); err != nil {
		t.Fatal(err)
	}
	to := c.LocalAddr().(*net.UDPAddr)
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 1)} {
		s, err := net.DialUDP("udp4", &net.UDPAddr{IP: ip}, to)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n := 1
		if ip[15] == 2 {
			n = 5000 // far more than the socket's buffer holds
		}
		for range n {
			s.Write([]byte("from " + ip.String()))
		}
	}
	var got []string
	buf := make([]byte, 64)
	for len(got) < 5000 {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	if len(got) != 1 || got[0] != "from 127.0.0.1" {
		t.Errorf("read %d datagrams (first %q), want only the gateway's", len(got), got[:min(len(got), 1)])
	}
}

func TestParseSSDPAnswer(t *testing.T) {
	const st = "urn:schemas-upnp-org:service:WANIPConnection:2"
	ok := "HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\nST: " + st + "\r\n\r\n"
	if loc, err := ParseSSDPAnswer([]byte(ok), st); err != nil || loc.String() != "http://192.168.1.1:5000/rootDesc.xml" {
		t.Errorf("ParseSSDPAnswer(ok) = %v, %v", loc, err)
	}
	for _, bad := range []string{
		"", "garbage", "HTTP/1.1 404 Not Found\r\nLOCATION: http://a/\r\nST: " + st + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLOCATION: http://a/\r\nST: upnp:rootdevice\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\nST: " + st + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLOCATION: /rootDesc.xml\r\nST: " + st + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nST: " + st + "\r\n\r\n",
	} {
		if loc, err := ParseSSDPAnswer([]byte(bad), st); err == nil {
			t.Errorf("ParseSSDPAnswer(%q) = %v", bad, loc)
		}
	}
}

// FuzzParseSSDPAnswer: an accepted answer names an http URL with a host,
// and the canonical answer written from it reads back the same.
func FuzzParseSSDPAnswer(f *testing.F) {
	const st = "urn:schemas-upnp-org:service:WANIPConnection:1"
	f.Add([]byte("HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\nST: " + st + "\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nlocation: http://[fe80::1%25eth0]:49000/d.xml\r\nst: " + st + "\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		loc, err := ParseSSDPAnswer(b, st)
		if err != nil {
			return
		}
		if loc.Scheme != "http" || loc.Hostname() == "" {
			t.Fatalf("accepted %q", loc)
		}
		again, err := ParseSSDPAnswer([]byte("HTTP/1.1 200 OK\r\nLOCATION: "+loc.String()+"\r\nST: "+st+"\r\n\r\n"), st)
		if err != nil || again.String() != loc.String() {
			t.Fatalf("%q read back as %v, %v", loc, again, err)
		}
	})
}
