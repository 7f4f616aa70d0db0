package vpn

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationWANEventReachesHub: the box (fakeigd, written from the
// UPnP IGD specification: Debian's miniupnpd reports no reserved address)
// announces its new WAN address by a UPnP event; cmd/vpn, subscribed to
// it, sends through the tunnel at once, and the hub learns the gate's new
// address. With a keepalive of five minutes and an idle tunnel, nothing
// else would tell the hub within the test's wait.
func TestIntegrationWANEventReachesHub(t *testing.T) {
	netlab.Require(t, "wireguard-go", "wg", "wg-quick", "nft", "ping", "sysctl")
	w := newWorld(t, 1, false)
	w.keepalive, w.failAfter = 5*time.Minute, 15*time.Minute
	w.writeSite()
	vps1 := w.vps[0]
	w.startHub(vps1)
	igd := site.StartIGD(t, w.box, "lan0", "wan0")
	p := w.startGate("auto")
	w.until("ping over the tunnel", 30*time.Second, func() error { return ping(w.gate, vps1.tunHub) })
	if err := p.WaitFor("box WAN address", 30*time.Second); err != nil {
		t.Fatalf("cmd/vpn did not follow the box: %v\n%s", err, p.Output())
	}
	// Idle: WireGuard's own passive keepalive (10 s after received data)
	// is behind us.
	time.Sleep(12 * time.Second)
	w.changeBoxAddress(boxWAN1, boxWAN2)
	d := w.until("the hub reaches the gate at its new address", 60*time.Second, func() error {
		if ep := hubEndpoint(vps1); !strings.HasPrefix(ep, boxWAN2+":") {
			return fmt.Errorf("vps-1 sees the gate at %q", ep)
		}
		return ping(vps1.host, vps1.tunGate)
	})
	t.Logf("hub back %s after the change (keepalive %s)", d.Round(time.Millisecond), w.keepalive)
	if !strings.Contains(p.Output(), "reaching the hub from it now") {
		t.Errorf("no nudge logged:\n%s\n%s", site.Tail(p.Output(), 15), site.Tail(igd.Output(), 10))
	}
}
