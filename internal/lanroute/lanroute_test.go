package lanroute

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"gate/internal/netnstest"
)

func TestMissing(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, c := range []struct {
		name          string
		addrs, routes []netip.Prefix
		want          []netip.Prefix
	}{
		{"route there", pp("192.168.1.2/24"), pp("192.168.1.0/24", "0.0.0.0/0"), nil},
		{"route gone", pp("192.168.1.2/24"), pp("0.0.0.0/0"), pp("192.168.1.0/24")},
		{"no routes at all", pp("10.1.2.3/16"), nil, pp("10.1.0.0/16")},
		{"a /32 has no subnet", pp("192.168.1.2/32"), nil, nil},
		{"IPv6 is not ours", pp("2001:db8::2/64"), nil, nil},
		{"two addresses, one subnet", pp("192.168.1.2/24", "192.168.1.3/24"), nil, pp("192.168.1.0/24")},
		{"a wider route is not the on-link one", pp("192.168.1.2/24"), pp("192.168.0.0/16"), pp("192.168.1.0/24")},
		{"no addresses", nil, pp("192.168.1.0/24"), nil},
	} {
		if got := Missing(c.addrs, c.routes); !slices.Equal(got, c.want) {
			t.Errorf("%s: Missing(%v, %v) = %v, want %v", c.name, c.addrs, c.routes, got, c.want)
		}
	}
}

// TestRepair: in a network namespace of its own, an interface with an
// address whose subnet route was deleted (what gokrazy's DHCP client's
// race leaves) gets the route back, at Metric; a second look adds nothing.
func TestRepair(t *testing.T) {
	netnstest.Enter(t)

	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "box0"}); err != nil {
		t.Fatal(err)
	}
	peer, _ := netlink.LinkByName("box0")
	if err := netlink.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	link, _ := netlink.LinkByName("lan0")
	addr, _ := netlink.ParseAddr("192.168.77.2/24")
	if err := netlink.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	dst := &net.IPNet{IP: net.IPv4(192, 168, 77, 0).To4(), Mask: net.CIDRMask(24, 32)}
	routeTo := func() *netlink.Route {
		rs, err := netlink.RouteList(link, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Dst != nil && r.Dst.String() == dst.String() {
				return &r
			}
		}
		return nil
	}
	if added, err := Repair("lan0"); err != nil || len(added) != 0 {
		t.Fatalf("with the kernel's route: added %v, err %v", added, err)
	}
	r := routeTo()
	if r == nil {
		t.Fatal("the kernel added no subnet route")
	}
	if err := netlink.RouteDel(r); err != nil {
		t.Fatal(err)
	}
	// gokrazy's client, failing on its default route, now and at every
	// restart.
	gw := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IPv4(192, 168, 77, 1)}
	if err := netlink.RouteReplace(gw); err == nil {
		t.Fatal("a default route was accepted without the subnet route")
	}
	added, err := Repair("lan0")
	if err != nil || len(added) != 1 || added[0] != netip.MustParsePrefix("192.168.77.0/24") {
		t.Fatalf("after the delete: added %v, err %v", added, err)
	}
	if r := routeTo(); r == nil || r.Priority != Metric || r.Scope != netlink.SCOPE_LINK || !r.Src.Equal(net.IPv4(192, 168, 77, 2)) {
		t.Fatalf("route put back: %+v", r)
	}
	if err := netlink.RouteReplace(gw); err != nil {
		t.Fatalf("default route after the repair: %v", err)
	}
	if added, err := Repair("lan0"); err != nil || len(added) != 0 {
		t.Fatalf("second look: added %v, err %v", added, err)
	}
	if added, err := Repair("nosuch0"); err != nil || len(added) != 0 {
		t.Fatalf("no such interface: added %v, err %v", added, err)
	}
}
