package vpn

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestIntegrationTunnel: handshake, ping and TCP over the tunnel (through
// the hub's generated port forwarding), LAN routing, a new public address
// on the box, failover to the second hub and the return to the first.
func TestIntegrationTunnel(t *testing.T) {
	netlab.Require(t, "wireguard-go", "wg", "wg-quick", "nft", "iperf3", "ping", "curl", "sysctl")
	w := newWorld(t, 2, false)
	for _, h := range w.vps {
		w.startHub(h)
	}
	vps1, vps2 := w.vps[0], w.vps[1]
	// A TCP service on the gate's bastion port (iperf3 stands in).
	srv := w.gate.Start("iperf3", nil, "iperf3", "-s", "-p", fmt.Sprint(bastionPort))

	start := time.Now()
	p := w.startGate("auto")
	if !strings.Contains(p.Output(), "backend=userspace") && !strings.Contains(p.Output(), "backend=kernel") {
		t.Errorf("the backend choice is not logged:\n%s", p.Output())
	}
	t.Logf("backend: %s", lineWith(p.Output(), "tunnel interface"))

	// Handshake: the hub knows the gate's endpoint, the box's address.
	w.until("handshake with vps-1", 30*time.Second, func() error {
		if ep := hubEndpoint(vps1); !strings.HasPrefix(ep, boxWAN1+":") {
			return fmt.Errorf("vps-1 sees the gate at %q", ep)
		}
		return nil
	})
	netlab.Report(t, "vpn first handshake after start", time.Since(start).Seconds(), "s")
	// Ping both ways.
	w.until("ping vps-1 from the gate", 10*time.Second, func() error { return ping(w.gate, vps1.tunHub) })
	w.until("ping the gate from vps-1", 10*time.Second, func() error { return ping(vps1.host, vps1.tunGate) })
	// TCP: an admin reaches the gate's bastion port at the hub's public
	// address (the generated DNAT + masquerade).
	if bps := iperf(t, w.admin, vps1Addr, 2222, 1); bps <= 0 {
		t.Errorf("TCP through vps-1's forwarded port: %v bit/s", bps)
	}
	// The service on the gate sees the admin's own address (no masquerade
	// at the hub; the gate answers through the tunnel).
	if srv.WaitFor("Accepted connection from "+adminIP, 10*time.Second) != nil {
		t.Errorf("the gate's service did not see the admin's address %s:\n%s", adminIP, srv.Output())
	}
	// The same over IPv6 (vps-1's public_address6): the tunnel carries
	// IPv6 between its derived addresses, the gate answers through it.
	if bps := iperf(t, w.admin, vps1v6, 2222, 1); bps <= 0 {
		t.Errorf("TCP through vps-1's forwarded port over IPv6: %v bit/s", bps)
	}
	if srv.WaitFor("Accepted connection from "+admin6, 10*time.Second) != nil {
		t.Errorf("the gate's service did not see the admin's IPv6 address %s:\n%s", admin6, srv.Output())
	}
	// LAN routing (route_lan on vps-1): the hub reaches the box's LAN side.
	w.until("vps-1 reaches the LAN through the gate", 10*time.Second, func() error { return ping(vps1.host, boxLAN) })
	if m := w.metrics(); !strings.Contains(m, `gate_vpn_hub_active{hub="vps-1"} 1`) || !strings.Contains(m, `gate_vpn_hub_up{hub="vps-1"} 1`) {
		t.Errorf("metrics do not show vps-1 active and up:\n%s", grepLines(m, "gate_vpn_"))
	}

	// The ISP changes the box's public address.
	w.changeBoxAddress(boxWAN1, boxWAN2)
	d := w.until("tunnel back after a new public address", 60*time.Second, func() error {
		if ep := hubEndpoint(vps1); !strings.HasPrefix(ep, boxWAN2+":") {
			return fmt.Errorf("vps-1 still sees the gate at %q", ep)
		}
		return ping(vps1.host, vps1.tunGate)
	})
	netlab.Report(t, "vpn recovery after public address change", d.Seconds(), "s")

	// Hub 1 goes away: failover to hub 2, and back when it returns.
	w.failoverAndBack(p.Output, "", func() {
		if err := ping(w.gate, vps2.tunHub); err != nil {
			t.Errorf("the gate does not reach vps-2 after the failover: %v", err)
		}
		if bps := iperf(t, w.admin, vps2Addr, 2223, 1); bps <= 0 {
			t.Errorf("TCP through vps-2's forwarded port: %v bit/s", bps)
		}
		if err := ping(w.gate, vps1.tunHub); err == nil {
			t.Errorf("vps-1's tunnel address answers while vps-1 is down")
		}
	})
	if m := w.metrics(); !strings.Contains(m, `gate_vpn_hub_active{hub="vps-1"} 1`) || !strings.Contains(m, `gate_vpn_hub_switches_total{from="vps-1",to="vps-2"} 1`) {
		t.Errorf("metrics after the return:\n%s", grepLines(m, "gate_vpn_"))
	}

	// A clean stop removes the interface.
	if err := p.Stop(); err != nil {
		t.Errorf("vpn stop: %v", err)
	}
	if out, err := w.gate.Run("ip", "link", "show", w.wgIface); err == nil {
		t.Errorf("interface %s left behind:\n%s", w.wgIface, out)
	}
	if out, _ := w.gate.Run("ip", "rule"); strings.Contains(out, "lookup 51820") {
		t.Errorf("routing rules left behind:\n%s", out)
	}
	if out, _ := w.gate.Run("nft", "list", "tables"); strings.Contains(out, "gate-vpn") {
		t.Errorf("nftables table left behind:\n%s", out)
	}
}

// failoverAndBack stops hub 1, waits for the gate to switch to hub 2
// (logs holds the gate's log), runs during, restarts hub 1 and waits for
// the return; it reports both recovery times with the suffix.
func (w *world) failoverAndBack(logs func() string, suffix string, during func()) {
	w.t.Helper()
	vps1, vps2 := w.vps[0], w.vps[1]
	w.stopHub(vps1)
	d := w.until("failover to vps-2", 3*w.failAfter+30*time.Second, func() error {
		if !strings.Contains(logs(), "hub=vps-2 endpoint="+vps2Addr+":51820 previous=vps-1") {
			return fmt.Errorf("no switch to vps-2 logged")
		}
		return ping(vps2.host, vps2.tunGate)
	})
	netlab.Report(w.t, "vpn failover to the second hub"+suffix, d.Seconds(), "s")
	during()
	w.startHub(vps1)
	d = w.until("back to vps-1", 3*w.failAfter+30*time.Second, func() error {
		if !strings.Contains(logs(), "hub=vps-1 endpoint="+vps1Addr+":51820 previous=vps-2") {
			return fmt.Errorf("no return to vps-1 logged")
		}
		return ping(vps1.host, vps1.tunGate)
	})
	netlab.Report(w.t, "vpn return to the first hub"+suffix, d.Seconds(), "s")
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestIntegrationHubMoves: the hub's endpoint is a name; the VPS gets a
// new address and its name follows; the gate, hearing nothing, looks the
// name up again and the tunnel comes back.
func TestIntegrationHubMoves(t *testing.T) {
	netlab.Require(t, "wireguard-go", "wg", "wg-quick", "nft", "ping", "sysctl")
	w := newWorld(t, 1, true)
	vps1 := w.vps[0]
	w.useHosts(map[string]string{"vps-1": vps1Addr})
	w.startHub(vps1)
	p := w.startGate("auto")
	w.until("ping the gate from vps-1", 30*time.Second, func() error { return ping(vps1.host, vps1.tunGate) })

	const moved = "198.51.100.21"
	vps1.host.MustRun("ip", "addr", "del", vps1Addr+"/24", "dev", "eth0")
	vps1.host.MustRun("ip", "addr", "add", moved+"/24", "dev", "eth0")
	w.useHosts(map[string]string{"vps-1": moved})
	d := w.until("tunnel back to the moved hub", 3*w.failAfter+30*time.Second, func() error {
		if !strings.Contains(p.Output(), "hub=vps-1 endpoint="+moved+":51820 previous="+vps1Addr+":51820") {
			return fmt.Errorf("no new endpoint logged")
		}
		return ping(vps1.host, vps1.tunGate)
	})
	netlab.Report(t, "vpn recovery after the hub moved (re-resolved)", d.Seconds(), "s")
}

// TestIntegrationBackendChoice: -backend kernel uses kernel WireGuard when
// the kernel has it and fails with a clear error otherwise (never a silent
// fallback); -backend userspace always runs wireguard-go in process.
func TestIntegrationBackendChoice(t *testing.T) {
	netlab.Require(t, "wireguard-go", "wg", "wg-quick", "nft", "ping", "sysctl")
	w := newWorld(t, 1, false)
	vps1 := w.vps[0]
	w.startHub(vps1)

	probe := w.lab.Name("kp")
	_, kerr := w.gate.Run("ip", "link", "add", probe, "type", "wireguard")
	kernelHasWG := kerr == nil
	if kernelHasWG {
		w.gate.Run("ip", "link", "del", probe)
	}
	args := []string{w.vpnBin, "-config", w.site, "-secrets", w.secrets, "-state", t.TempDir(), "-metrics", "", "-backend", "kernel"}

	// An interface of another kind with the tunnel's name is never deleted.
	w.gate.MustRun("ip", "link", "add", w.wgIface, "type", "bridge")
	out, err := w.gate.Run(append(slices.Clone(args[:len(args)-1]), "auto")...)
	if err == nil || !strings.Contains(out, "already exists and is a bridge link") {
		t.Errorf("vpn with a bridge named %s: err=%v, want a refusal:\n%s", w.wgIface, err, out)
	}
	if _, err := w.gate.Run("ip", "link", "show", w.wgIface); err != nil {
		t.Errorf("the bridge %s was deleted", w.wgIface)
	}
	w.gate.MustRun("ip", "link", "del", w.wgIface)
	if kernelHasWG {
		p := w.startGate("kernel")
		if !strings.Contains(p.Output(), "backend=kernel") {
			t.Errorf("kernel backend not used:\n%s", p.Output())
		}
		w.until("ping the gate from vps-1 (kernel)", 30*time.Second, func() error { return ping(vps1.host, vps1.tunGate) })
		p.Stop()
	} else {
		out, err := w.gate.Run(args...)
		if err == nil || !strings.Contains(out, "creating wireguard link") || strings.Contains(out, "msg=ready") {
			t.Errorf("-backend kernel without kernel WireGuard: err=%v, want a clear failure:\n%s", err, out)
		}
	}
	p := w.startGate("userspace")
	if !strings.Contains(p.Output(), "backend=userspace") {
		t.Errorf("userspace backend not used:\n%s", p.Output())
	}
	w.until("ping the gate from vps-1 (userspace)", 30*time.Second, func() error { return ping(vps1.host, vps1.tunGate) })
}
