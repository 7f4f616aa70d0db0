package upsd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// wakeListener is a Wake-on-LAN NIC for the site's servers: a raw packet
// socket (Debian's Python, not our code) on the LAN switch's bridge that
// prints "WAKE <mac>" for each frame carrying a server's magic pattern
// (six 0xff bytes, then the MAC sixteen times), as a sleeping NIC scans
// every frame.
const wakeListener = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("br0", 0))
pats = {m: b"\xff" * 6 + bytes.fromhex(m.replace(":", "")) * 16 for m in sys.argv[1:]}
print("listening", flush=True)
while True:
    f = s.recv(65535)
    for m, p in pats.items():
        if p in f:
            print("WAKE", m, flush=True)
`

// TestIntegrationUPSReturn: after the shutdown plan, the gate boots again
// (upsd restarted with the finished journal) with mains back at the NUT
// source but the battery low: it waits for ups.return.min_charge, then
// wakes the ceph hosts (Wake-on-LAN seen by a raw socket on the LAN; a
// host powers on only when its magic packet arrives: its link up, its
// upsmon started), unsets noout over SSH once the last ceph host is back,
// only then wakes compute-1 and uncordons it.
func TestIntegrationUPSReturn(t *testing.T) {
	l := newLab(t, labOptions{
		groups: "    - {name: compute, timeout: 20s, pre_steps: [k3s-drain]}\n    - {name: ceph, timeout: 20s, pre_steps: [ceph-noout]}",
		ups:    "  return: {min_charge: 50, wake_after: 10s, wake_tries: 3}\n",
	})
	netlab.Require(t, "/usr/bin/python3")
	pub, err := os.ReadFile(filepath.Join(l.secrets, "shutdown_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]string{}
	for _, n := range []string{"compute-1", "ceph-1"} {
		logs[n] = filepath.Join(l.dir, n+".ssh.log")
		forced := fmt.Sprintf(`command="/bin/sh -c 'echo $(date +%%s.%%N) $SSH_ORIGINAL_COMMAND >> %s'",restrict %s`, logs[n], strings.TrimSpace(string(pub)))
		l.s.StartSSHD(l.s.Server(n), []string{forced})
	}
	l.startUpsd()
	markers := l.secondaries()
	l.src.Set("OB LB", 10, 60)
	l.waitPowerOff(90*time.Second, l.upsd.Output)
	for n, m := range markers {
		if _, ok := offAt(m); !ok {
			t.Fatalf("%s did not go off the LAN", n)
		}
	}

	// The Pi boots again: mains is back, the battery still low.
	l.upsd.Stop()
	l.src.Set("OL CHRG", 30, 600)
	if err := netlab.Eventually(20*time.Second, 300*time.Millisecond, func() error {
		if st, _ := l.src.Status(); st != "OL CHRG" {
			return fmt.Errorf("source still %q", st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var macs []string
	byMAC := map[string]site.Server{}
	for _, sv := range l.s.Servers {
		macs = append(macs, sv.MAC)
		byMAC[sv.MAC] = sv
	}
	lst := l.s.Switch.Start("wol", nil, append([]string{"/usr/bin/python3", "-c", wakeListener}, macs...)...)
	if err := lst.WaitFor("listening", 10*time.Second); err != nil {
		t.Fatal(err, lst.Output())
	}
	var mu sync.Mutex
	woken := map[string]float64{} // host → first magic packet seen, powered on then
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the NICs: power a host on at its first magic packet
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			sc := bufio.NewScanner(strings.NewReader(lst.Output()))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 2 || f[len(f)-2] != "WAKE" {
					continue
				}
				sv := byMAC[f[len(f)-1]]
				mu.Lock()
				_, done := woken[sv.Name]
				if !done {
					woken[sv.Name] = float64(time.Now().UnixNano()) / 1e9
				}
				mu.Unlock()
				if !done {
					l.s.PowerOn(sv)
					os.Remove(markers[sv.Name])
					l.upsmon[sv.Name] = l.s.StartUpsmon(sv, "192.168.1.2", "ups", sv.Name, l.password(sv.Name), site.PowerOffCmd(markers[sv.Name], hostOff))
				}
			}
		}
	}()
	l.startUpsd()
	time.Sleep(5 * time.Second)
	mu.Lock()
	if len(woken) > 0 {
		t.Errorf("hosts woken while the battery was at 30%%: %v", woken)
	}
	mu.Unlock()
	charged := float64(time.Now().UnixNano()) / 1e9
	l.src.Set("OL CHRG", 80, 1800)
	if err := l.upsd.WaitFor("return plan done", 120*time.Second); err != nil {
		t.Fatal(err, site.Tail(l.upsd.Output(), 30))
	}
	ran := func(host, cmd string) float64 {
		b, _ := os.ReadFile(logs[host])
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.Join(f[1:], " ") == cmd {
				var at float64
				fmt.Sscan(f[0], &at)
				return at
			}
		}
		t.Errorf("%s: %q never ran over SSH; its log:\n%s", host, cmd, b)
		return 0
	}
	unset := ran("ceph-1", "ceph osd unset noout")
	uncordon := ran("compute-1", "kubectl uncordon compute-1")
	mu.Lock()
	defer mu.Unlock()
	lastCeph := 0.0
	for _, n := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		at, ok := woken[n]
		if !ok {
			t.Fatalf("%s was never woken", n)
		}
		if at < charged {
			t.Errorf("%s woken before the battery reached min_charge", n)
		}
		lastCeph = max(lastCeph, at)
	}
	compute, ok := woken["compute-1"]
	switch {
	case !ok:
		t.Fatal("compute-1 was never woken")
	case unset < lastCeph:
		t.Errorf("noout unset (%.3f) before the last ceph host was back (%.3f)", unset, lastCeph)
	case compute < unset:
		t.Errorf("compute-1 woken (%.3f) before the ceph group was back and noout unset (%.3f)", compute, unset)
	case uncordon < compute:
		t.Errorf("compute-1 uncordoned (%.3f) before it was back (%.3f)", uncordon, compute)
	}
	t.Logf("charged → ceph back %.1fs, noout unset %.1fs, compute-1 woken %.1fs, uncordoned %.1fs", lastCeph-charged, unset-charged, compute-charged, uncordon-charged)
}
