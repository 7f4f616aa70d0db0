package vpn

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// wanChanges is how many address changes each side of the WAN bench sees.
const wanChanges = 10

// TestSideBySideWANChange measures, at the site file's defaults (keepalive
// 25 s), how long after the box's public address changes the hub reaches
// the gate through the tunnel again: cmd/vpn, told by the box's UPnP
// event (fakeigd, written from the IGD specification: Debian's miniupnpd
// reports no reserved address), beside Debian's wireguard-go at the gate
// with the same keepalive. Ten changes each, at random phases of the
// keepalive (a uniform wait of 0 to 25 s before each), every other one
// right after traffic through the tunnel, the others after idling; p50 and
// p95 (the largest of ten) are reported. "Reaches" is what `ssh -J`
// needs: the hub sends to the gate's new address (its WireGuard endpoint)
// and a ping from the hub to the gate's tunnel address is answered.
func TestSideBySideWANChange(t *testing.T) {
	netlab.Bench(t, "wireguard-go", "wg", "wg-quick", "nft", "ping", "sysctl")
	w := newWorld(t, 1, false)
	w.keepalive, w.failAfter = 25*time.Second, 90*time.Second // the defaults
	w.writeSite()
	vps1 := w.vps[0]
	w.startHub(vps1)
	site.StartIGD(t, w.box, "lan0", "wan0")
	wan := []string{boxWAN1, boxWAN2}
	cur := 0

	measure := func(name string) []float64 {
		w.until(name+": ping over the tunnel", 60*time.Second, func() error { return ping(vps1.host, vps1.tunGate) })
		var out []float64
		for i := range wanChanges {
			if i%2 == 0 {
				vps1.host.Run("ping", "-c5", "-i0.2", "-W1", "-n", vps1.tunGate) // traffic both ways
			} else {
				time.Sleep(10 * time.Second) // idle past WireGuard's passive keepalive
			}
			time.Sleep(time.Duration(rand.Int64N(int64(w.keepalive))))
			next := (cur + 1) % 2
			start := time.Now() // the old address goes first: the change starts here
			w.changeBoxAddress(wan[cur], wan[next])
			cur = next
			err := netlab.Eventually(90*time.Second, 50*time.Millisecond, func() error {
				if ep := hubEndpoint(vps1); !strings.HasPrefix(ep, wan[cur]+":") {
					return fmt.Errorf("vps-1 sees the gate at %q", ep)
				}
				return ping(vps1.host, vps1.tunGate)
			})
			if err != nil {
				t.Fatalf("%s: change %d: %v", name, i+1, err)
			}
			d := time.Since(start).Seconds()
			t.Logf("%s: change %d (%s): the hub reaches the gate after %.2f s", name, i+1, map[bool]string{true: "after traffic", false: "after idle"}[i%2 == 0], d)
			out = append(out, d)
		}
		return out
	}

	p := w.startGate("auto")
	if err := p.WaitFor("box WAN address", 30*time.Second); err != nil {
		t.Fatalf("cmd/vpn does not follow the box: %v", err)
	}
	ours := measure("cmd/vpn")
	p.Stop()

	w.startWireguardGo(vps1)
	theirs := measure("wireguard-go")

	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p95", 0.95}} {
		o, d := netlab.Quantile(ours, q.q), netlab.Quantile(theirs, q.q)
		netlab.Report(t, fmt.Sprintf("vpn WAN change to hub reaching the gate %s, cmd/vpn (UPnP event)", q.name), o, "s")
		netlab.Report(t, fmt.Sprintf("vpn WAN change to hub reaching the gate %s, Debian wireguard-go (keepalive 25s)", q.name), d, "s")
		netlab.Report(t, fmt.Sprintf("vpn WAN change to hub reaching the gate %s ratio cmd/vpn/wireguard-go", q.name), o/d, "x")
	}
}
