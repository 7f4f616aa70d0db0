package tailnet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// jumpHub is the -J argument through the WireGuard hub's port forward.
var jumpHub = fmt.Sprintf("admin@%s:2222", site.Hub1WAN)

// TestIntegrationTailnetBesideHub: the WireGuard hub and the tailnet side
// by side, each with its own bastion process; when the hub stops, the
// tailnet path still works.
func TestIntegrationTailnetBesideHub(t *testing.T) {
	l := newLab(t, true)
	l.reach(t, "hub", "-J", jumpHub, "root@ceph-1")
	l.reach(t, "tailnet", "-J", jumpTailnet, "root@ceph-1")
	// The hub goes away (its wireguard-go stops and its interface with it).
	if err := l.hub.Proc.Stop(); err != nil {
		t.Logf("hub stop: %v", err)
	}
	if out, err := l.ssh("-o", "ConnectTimeout=5", "-J", jumpHub, "root@ceph-1", "true"); err == nil {
		t.Fatalf("the hub path still works with the hub stopped:\n%s", out)
	}
	l.reach(t, "still", "-J", jumpTailnet, "root@ceph-1")
}

// TestSideBySideTailnet: scp of the same 256 MiB file and SSH connection
// setup through the gate's bastion on the tailnet (the admin's tsnet node
// to the gate's, both userspace) and through the WireGuard hub (the hub's
// port forward into the gate's tunnel), on the same machine.
func TestSideBySideTailnet(t *testing.T) {
	netlab.Bench(t, "ssh", "scp", "sshd", "wireguard-go")
	l := newLab(t, true)
	src := filepath.Join(l.dir, "big")
	f, _ := os.Create(src)
	f.Truncate(256 << 20)
	f.Close()
	cfg := l.config()
	timed := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := l.admin.Run(args...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		return time.Since(start)
	}
	// Both paths warm (handshakes, DERP or direct) before measuring.
	timed("ssh", "-F", cfg, "-J", jumpHub, "root@ceph-1", "true")
	timed("ssh", "-F", cfg, "-J", jumpTailnet, "root@ceph-1", "true")
	hub := timed("scp", "-F", cfg, "-J", jumpHub, src, "root@ceph-1:"+src+".hub")
	tn := timed("scp", "-F", cfg, "-J", jumpTailnet, src, "root@ceph-1:"+src+".tailnet")
	const mb = 256.0
	netlab.Report(t, "tailnet_scp_256MiB_hub", mb/hub.Seconds(), "MiB/s")
	netlab.Report(t, "tailnet_scp_256MiB_tailnet", mb/tn.Seconds(), "MiB/s")
	netlab.Report(t, "tailnet_scp_throughput_ratio_tailnet_over_hub", hub.Seconds()/tn.Seconds(), "x")
	const n = 5
	var h, s time.Duration
	for i := 0; i < n; i++ {
		h += timed("ssh", "-F", cfg, "-J", jumpHub, "root@ceph-1", "true")
		s += timed("ssh", "-F", cfg, "-J", jumpTailnet, "root@ceph-1", "true")
	}
	netlab.Report(t, "tailnet_ssh_setup_hub", (h/n).Seconds()*1000, "ms")
	netlab.Report(t, "tailnet_ssh_setup_tailnet", (s/n).Seconds()*1000, "ms")
	netlab.Report(t, "tailnet_ssh_setup_ratio_tailnet_over_hub", float64(s)/float64(h), "x")
}
