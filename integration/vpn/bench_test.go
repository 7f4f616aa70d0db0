package vpn

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestSideBySideTunnel measures the same path, gate to hub through the
// box's NAT, with cmd/vpn at the gate and then with Debian's wireguard-go
// at the gate (Debian's wireguard-go at the hub both times): iperf3 both
// ways, and the time until the hub reaches the gate again after the box's
// public address changed.
func TestSideBySideTunnel(t *testing.T) {
	netlab.Bench(t, "wireguard-go", "wg", "wg-quick", "nft", "iperf3", "ping", "curl", "sysctl")
	w := newWorld(t, 1, false)
	vps1 := w.vps[0]
	w.startHub(vps1)
	vps1.host.Start("iperf3", nil, "iperf3", "-s")
	const secs = 5

	type result struct{ up, down, recovery float64 }
	measure := func(name string) result {
		w.until(name+": ping over the tunnel", 30*time.Second, func() error { return ping(w.gate, vps1.tunHub) })
		r := result{
			up:   iperf(t, w.gate, vps1.tunHub, 5201, secs) / 1e6,
			down: iperfReverse(t, w.gate, vps1.tunHub, secs) / 1e6,
		}
		w.changeBoxAddress(boxWAN1, boxWAN2)
		r.recovery = w.until(name+": tunnel back after a new public address", 60*time.Second, func() error {
			if ep := hubEndpoint(vps1); !strings.HasPrefix(ep, boxWAN2+":") {
				return fmt.Errorf("vps-1 sees the gate at %q", ep)
			}
			return ping(vps1.host, vps1.tunGate)
		}).Seconds()
		w.changeBoxAddress(boxWAN2, boxWAN1)
		return r
	}

	p := w.startGate("auto")
	backend := "userspace"
	if strings.Contains(p.Output(), "backend=kernel") {
		backend = "kernel"
	}
	ours := measure("cmd/vpn")
	p.Stop()

	w.startWireguardGo(vps1)
	theirs := measure("wireguard-go")

	netlab.Report(t, "vpn iperf3 gate->hub cmd/vpn ("+backend+")", ours.up, "Mbit/s")
	netlab.Report(t, "vpn iperf3 gate->hub Debian wireguard-go", theirs.up, "Mbit/s")
	netlab.Report(t, "vpn iperf3 gate->hub ratio cmd/vpn/wireguard-go", ours.up/theirs.up, "x")
	netlab.Report(t, "vpn iperf3 hub->gate cmd/vpn ("+backend+")", ours.down, "Mbit/s")
	netlab.Report(t, "vpn iperf3 hub->gate Debian wireguard-go", theirs.down, "Mbit/s")
	netlab.Report(t, "vpn iperf3 hub->gate ratio cmd/vpn/wireguard-go", ours.down/theirs.down, "x")
	netlab.Report(t, "vpn recovery after public address change cmd/vpn", ours.recovery, "s")
	netlab.Report(t, "vpn recovery after public address change Debian wireguard-go", theirs.recovery, "s")
}

// startWireguardGo runs Debian's wireguard-go at the gate in place of
// cmd/vpn, configured by hand the same way (the same key, hub and
// keepalive).
func (w *world) startWireguardGo(h *hubNS) {
	w.t.Helper()
	gw := w.lab.Name("gw")
	w.gate.Start("wireguard-go", []string{"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1", "LOG_LEVEL=error"}, "wireguard-go", "-f", gw)
	w.until("Debian wireguard-go at the gate", 10*time.Second, func() error { _, err := w.gate.Run("wg", "show", gw); return err })
	w.gate.MustRun("wg", "set", gw, "private-key", filepath.Join(w.secrets, "wireguard.key"),
		"peer", h.key.PublicKey().String(), "endpoint", h.addr+":51820", "allowed-ips", "10.99.0.0/24",
		"persistent-keepalive", fmt.Sprint(int(w.keepalive.Seconds())))
	w.gate.MustRun("ip", "addr", "add", h.tunGate+"/24", "dev", gw)
	w.gate.MustRun("ip", "link", "set", gw, "mtu", "1420", "up")
}

// iperfReverse is iperf with the server sending (-R).
func iperfReverse(t *testing.T, h *netlab.Host, addr string, secs int) float64 {
	t.Helper()
	return iperfArgs(t, h, addr, 5201, secs, "-R")
}
