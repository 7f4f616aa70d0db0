package bootstrap

import (
	"net/netip"
	"testing"
)

// TestIPXEScriptOnlyForTheHost: a script request for a host's MAC from
// another machine (its neighbour MAC is not the host's) or from an address
// without a neighbour entry is refused and leaves the host's state alone,
// so nobody on the LAN can move an installer host to "installing".
func TestIPXEScriptOnlyForTheHost(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.neigh[netip.MustParseAddr("10.9.0.21")] = "52:54:00:00:02:01"
	f.want(f.do("POST", "/api/hosts/inst-1/reimage", "10.9.0.50", "", "Authorization", "Bearer tok"), 200, "flagged")
	for _, src := range []string{"10.9.0.11", "10.9.0.77"} { // ceph-1; no neighbour entry
		f.want(f.do("GET", "/ipxe/52:54:00:00:02:01", src, ""), 403, "is not inst-1")
		if st := f.s.Store.Get("inst-1"); st.Phase != PhaseFlagged || !st.LastBoot.IsZero() {
			t.Fatalf("refused request from %s changed inst-1's state: %+v", src, st)
		}
	}
	f.want(f.do("GET", "/ipxe/52:54:00:00:02:01", "10.9.0.21", ""), 200, "ds=nocloud-net")
	if st := f.s.Store.Get("inst-1"); st.Phase != PhaseInstalling || st.LastBoot.IsZero() {
		t.Fatalf("the host's own request did not move it to installing: %+v", st)
	}
}
