package bastion

import (
	"net/netip"
	"reflect"
	"testing"

	"gate/config"
)

func TestListenAddrs(t *testing.T) {
	vpn := &config.VPN{Hubs: []config.Hub{
		{GateAddress: netip.MustParsePrefix("10.99.0.2/24")},
		{GateAddress: netip.MustParsePrefix("10.98.0.2/24")},
		{GateAddress: netip.MustParsePrefix("10.99.0.2/24")},
	}}
	// A hub with a public IPv6 address: the tunnel's IPv6 address too.
	vpn6 := &config.VPN{Hubs: []config.Hub{
		{GateAddress: netip.MustParsePrefix("10.99.0.2/24"), PublicAddress6: netip.MustParseAddr("2001:db8::1")},
	}}
	for _, tc := range []struct {
		name    string
		vpn     *config.VPN
		address string
		lan     bool
		want    []string
	}{
		{"tunnel only", vpn, "dhcp", false, []string{"10.99.0.2:22", "10.98.0.2:22"}},
		{"tunnel and static LAN", vpn, "192.168.1.2/24", true, []string{"10.99.0.2:22", "10.98.0.2:22", "192.168.1.2:22"}},
		{"tunnel and DHCP LAN: every address", vpn, "dhcp", true, []string{":22"}},
		{"tunnel with IPv6", vpn6, "dhcp", false, []string{"10.99.0.2:22", "[fd67:6174:6500::a63:2]:22"}},
		{"LAN only", nil, "192.168.1.2/24", true, []string{"192.168.1.2:22"}},
	} {
		c := &config.Config{VPN: tc.vpn, Bastion: &config.Bastion{Port: 22, ListenLAN: tc.lan}}
		c.Gate.Address = tc.address
		if got := ListenAddrs(c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
