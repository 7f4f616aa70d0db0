package publicip

import (
	"fmt"
	"net/netip"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gate/internal/netnstest"
)

func TestAtGateway(t *testing.T) {
	dev := func(loc string) *url.URL {
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	box := dev("http://192.168.1.1:5000/rootDesc.xml")
	rogue := dev("http://192.168.1.66:5000/rootDesc.xml")
	gw := []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fe80::1")}
	for _, tc := range []struct {
		name   string
		found  []*url.URL
		gws    []netip.Addr
		boxes  int
		others string
	}{
		{"the box", []*url.URL{box}, gw, 1, ""},
		{"a LAN host answering as an IGD", []*url.URL{rogue}, gw, 0, "192.168.1.66"},
		{"the rogue answered first", []*url.URL{rogue, box, rogue}, gw, 1, "192.168.1.66"},
		{"the box over IPv6 link-local", []*url.URL{dev("http://[fe80::1%25eth0]:5000/d.xml")}, gw, 1, ""},
		{"a name, not an address", []*url.URL{dev("http://box.lan:5000/d.xml")}, gw, 0, "box.lan"},
		{"no default route", []*url.URL{box}, nil, 0, "192.168.1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boxes, others := atGateway(tc.found, tc.gws)
			if len(boxes) != tc.boxes || strings.Join(others, ",") != tc.others {
				t.Errorf("atGateway = %d boxes, others %q; want %d, %q", len(boxes), others, tc.boxes, tc.others)
			}
			for _, b := range boxes {
				if b != box && b.Hostname() != "fe80::1%eth0" {
					t.Errorf("kept %s", b)
				}
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

// TestUPnPNoDefaultRoute: without a default route there is no box to ask,
// and the error says so (not that the box was ignored).
func TestUPnPNoDefaultRoute(t *testing.T) {
	u := &UPnP{Gateways: func() ([]netip.Addr, error) { return nil, nil }}
	if _, err := u.Lookup(t.Context()); err == nil || !strings.Contains(err.Error(), "no default route") {
		t.Errorf("Lookup without a default route: %v", err)
	}
}
