package table_test

import (
	"net/netip"
	"testing"

	"gate/internal/firewall"
	"gate/internal/firewall/table"
	"gate/internal/netnstest"
)

// TestPresent: in a network namespace of its own, the table is absent,
// then present once the policy is applied, then absent once removed.
func TestPresent(t *testing.T) {
	netnstest.Enter(t)

	want := func(step string, present bool) {
		t.Helper()
		got, err := table.Present()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got != present {
			t.Errorf("%s: Present() = %v, want %v", step, got, present)
		}
	}
	want("before the policy", false)
	p := firewall.Policy{LAN: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}
	if err := firewall.Apply(p); err != nil {
		t.Fatal(err)
	}
	want("after Apply", true)
	if err := firewall.Remove(); err != nil {
		t.Fatal(err)
	}
	want("after Remove", false)
}
