package vpn

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationKernelBackendQEMU runs cmd/vpn with -backend kernel on
// gokrazy's kernel.amd64 (WireGuard built in) under QEMU (TCG), as the
// gate on the lab's LAN: handshake and ping with the hub, LAN routing
// (nftables masquerade through netlink), and the tunnel back after the
// box's public address changed, failover to the second hub and back. This machine's kernel has no WireGuard,
// so this is where the kernel backend runs.
func TestIntegrationKernelBackendQEMU(t *testing.T) {
	netlab.Require(t, "qemu-system-x86_64", "wireguard-go", "wg", "wg-quick", "nft", "ping", "sysctl")
	kernel := site.KernelAMD64(t)
	w := newWorld(t, 2, false)
	vps1 := w.vps[0]
	for _, h := range w.vps {
		w.startHub(h)
	}

	// The gate namespace becomes the LAN switch: its veth to the box and
	// the VM's tap on one bridge.
	w.gate.MustRun("ip", "addr", "flush", "dev", "eth0")
	w.gate.Bridge("lanbr", "")
	w.gate.MustRun("ip", "link", "set", "eth0", "master", "lanbr")
	w.gate.Tap("tap0", "lanbr")

	initrd := filepath.Join(t.TempDir(), "initrd.cpio")
	files := map[string]string{
		"init":               netlab.Build(t, "gate/integration/vpn/kernelinit"),
		"vpn":                w.vpnBin,
		"etc/gate/site.yaml": w.site,
	}
	secrets, _ := os.ReadDir(w.secrets)
	for _, e := range secrets {
		files["secrets/"+e.Name()] = filepath.Join(w.secrets, e.Name())
	}
	writeInitrd(t, initrd, files)

	qemu := w.gate.Start("qemu", nil, "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 gate.addr="+gateLAN+"/24 gate.gw="+boxLAN,
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0")
	start := time.Now()
	if err := qemu.WaitFor("msg=ready", 3*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, tail(qemu.Output(), 40))
	}
	netlab.Report(t, "vpn kernel backend: boot to ready under TCG", time.Since(start).Seconds(), "s")
	if !strings.Contains(qemu.Output(), "backend=kernel") {
		t.Fatalf("the VM's vpn did not use kernel WireGuard:\n%s", tail(qemu.Output(), 40))
	}
	w.until("ping the gate VM from vps-1", time.Minute, func() error { return ping(vps1.host, vps1.tunGate) })
	w.until("vps-1 reaches the LAN through the gate VM", 30*time.Second, func() error { return ping(vps1.host, boxLAN) })

	w.changeBoxAddress(boxWAN1, boxWAN2)
	d := w.until("tunnel back after a new public address (kernel)", time.Minute, func() error {
		if ep := hubEndpoint(vps1); !strings.HasPrefix(ep, boxWAN2+":") {
			return fmt.Errorf("vps-1 sees the gate at %q", ep)
		}
		return ping(vps1.host, vps1.tunGate)
	})
	netlab.Report(t, "vpn recovery after public address change (kernel backend, TCG)", d.Seconds(), "s")
	w.failoverAndBack(qemu.Output, " (kernel backend, TCG)", func() {})
	qemu.Kill()
}

// writeInitrd writes a newc cpio archive with files (archive path → host
// path) and the directories they need.
func writeInitrd(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	cw := cpio.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdir := func(d string) {
		if dirs[d] {
			return
		}
		dirs[d] = true
		if err := cw.WriteHeader(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "etc"} {
		mkdir(d)
	}
	for name, src := range files {
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			mkdir(strings.Join(parts[:i], "/"))
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := cw.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | 0o755, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
