package site

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// GateVM is the real gate image booted under QEMU with its NIC on the
// site's LAN switch: the amd64 twin (BootGate) or the arm64 Pi image
// (BootPi).
type GateVM struct {
	Proc  *netlab.Proc
	Image string
	Arch  string
	Pi    *PiBoot // the emulated Pi's SD card and boot files (arm64)
	// start powers the same machine on again (same disk, same tap).
	start func(name string) *GateVM
}

// KernelAMD64 returns the path of gokrazy's kernel.amd64 vmlinuz.
func KernelAMD64(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/gokrazy/kernel.amd64").Output()
	if err != nil {
		t.Fatalf("locating kernel.amd64: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "vmlinuz")
}

// BuildImage runs `gate image --arch amd64` on siteFile and returns the
// image's path and the root PARTUUID it printed.
func (s *Site) BuildImage(gateCLI, siteFile string) (img, partuuid string) {
	s.t.Helper()
	return s.BuildImageArch(gateCLI, siteFile, "amd64", filepath.Join(s.Dir, "gate-amd64.img"))
}

// BuildImageArch runs `gate image --arch arch -o img` on siteFile, as
// `make image` does for arm64, and returns the root PARTUUID it printed.
func (s *Site) BuildImageArch(gateCLI, siteFile, arch, img string, extra ...string) (string, string) {
	s.t.Helper()
	var partuuid string
	cmd := exec.Command(gateCLI, append([]string{"image", "-c", siteFile, "--arch", arch, "-o", img}, extra...)...)
	cmd.Dir = RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("gate image: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "root=PARTUUID="); ok {
			partuuid = v
		}
	}
	if partuuid == "" {
		s.t.Fatalf("gate image printed no root=PARTUUID:\n%s", out)
	}
	return img, partuuid
}

// BootGate boots img under QEMU (TCG) with its NIC (MAC mac) on a tap in
// the LAN switch, kernel direct boot as gokrazy's amd64 twin is meant to.
func (s *Site) BootGate(img, partuuid, mac string) *GateVM {
	s.t.Helper()
	s.Switch.Tap(s.Lab.Name("gt"), "br0")
	return s.startGate("qemu-gate", img, partuuid, mac)
}

// startGate runs QEMU on the gate's tap (made by BootGate, kept across
// power cycles).
func (s *Site) startGate(name, img, partuuid, mac string) *GateVM {
	tap := s.Lab.Name("gt")
	kernel := KernelAMD64(s.t)
	g := &GateVM{Image: img, Arch: "amd64"}
	g.start = func(name string) *GateVM {
		p := s.Switch.Start(name, nil, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024",
			"-nographic", "-no-reboot", "-kernel", kernel,
			"-append", fmt.Sprintf("console=ttyS0,115200 root=PARTUUID=%s init=/gokrazy/init rootwait panic=10 oops=panic", partuuid),
			"-drive", "file="+img+",format=raw,if=virtio",
			"-netdev", "tap,id=n0,ifname="+tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac="+mac)
		return &GateVM{Proc: p, Image: img, Arch: "amd64", start: g.start}
	}
	return g.start(name)
}

// PowerCut cuts the machine's power (QEMU is killed) if it still runs.
// What the emulated disk acknowledged stays written, as on a real card:
// the Pi's SD card is opened with cache=writethrough (see pi.go), so QEMU
// holds no qcow2 metadata a kill could lose. (A SIGTERM stop, tried for
// the same purpose, made the journey's step 8 fail once: its clock floor
// and vpn never came back in sync within 3 minutes; with writethrough and
// a kill, /perm, an update and step 8 all held.)
func (g *GateVM) PowerCut() {
	select {
	case <-g.Proc.Done():
	default:
		g.Proc.Kill()
	}
}

// PowerOn powers the same machine on again (same disk, same NIC) after
// PowerCut or a power-off; name labels the QEMU process in the log.
func (g *GateVM) PowerOn(name string) *GateVM {
	g.PowerCut()
	return g.start(name)
}

// Halted waits until the gate powered itself off: QEMU exits (amd64), or
// the kernel's last line is on the console (the emulated Pi has no power
// switch without the watchdog driver; see pi.go).
func (g *GateVM) Halted(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case <-g.Proc.Done():
			return nil
		case <-deadline:
			return fmt.Errorf("the gate is still running after %v", timeout)
		case <-time.After(500 * time.Millisecond):
			out := g.Proc.Output()
			// "reboot: Power down", or on the emulated Pi "reboot: Power
			// off not available: System halted instead".
			if strings.Contains(out, "System halted") || strings.Contains(out, "reboot: Power down") {
				return nil
			}
		}
	}
}

// WaitReady waits for every named daemon's readiness line on the console.
func (g *GateVM) WaitReady(daemons []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, d := range daemons {
		left := time.Until(deadline)
		if left <= 0 {
			left = time.Millisecond
		}
		if err := g.Proc.WaitFor("msg=ready daemon="+d, left); err != nil {
			return fmt.Errorf("%v\nlast console lines:\n%s", err, Tail(g.Proc.Output(), 30))
		}
	}
	if slices.Contains(daemons, "firewall") {
		if early := readyBeforeFirewall(g.Proc.Output()); len(early) > 0 {
			return fmt.Errorf("ready (listening) before the firewall's policy was set: %s", strings.Join(early, ", "))
		}
	}
	return nil
}

// readyBeforeFirewall returns the daemons whose readiness line came before
// the firewall's in the console output of the last boot (after its last
// "Linux version" line, else in all of out). Every daemon listens before
// it is ready; lanroute, which listens nowhere, does not count.
func readyBeforeFirewall(out string) []string {
	if i := strings.LastIndex(out, "Linux version"); i >= 0 {
		out = out[i:]
	}
	var early []string
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, "msg=ready daemon=")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		switch name {
		case "firewall":
			return early
		case "lanroute":
		default:
			early = append(early, name)
		}
	}
	return early
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Hub is a VPS running Debian's wireguard-go, configured from the files
// `gate vps-config -o DIR` wrote.
type Hub struct {
	Host  *netlab.Host
	Iface string
	Proc  *netlab.Proc
	Dir   string
}

// StartHub applies what `gate vps-config` wrote in dir to host h the way
// wg-quick would: a wireguard-go interface loaded with the stripped config,
// the hub's own private key (keyFile), its addresses, MTU, the sysctls and
// the nftables rules that forward the bastion's public port.
func (s *Site) StartHub(h *netlab.Host, iface, dir, keyFile string) *Hub {
	s.t.Helper()
	conf := filepath.Join(dir, iface+".conf")
	p := h.Start("wireguard-go", []string{"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1", "LOG_LEVEL=error"}, "wireguard-go", "-f", iface)
	if err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		_, err := h.Run("wg", "show", iface)
		return err
	}); err != nil {
		s.t.Fatalf("wireguard-go on %s: %v", h.Name, err)
	}
	stripped, err := h.Output("wg-quick", "strip", conf)
	if err != nil {
		s.t.Fatal(err)
	}
	sc := filepath.Join(dir, "stripped.conf")
	if err := os.WriteFile(sc, []byte(stripped), 0o600); err != nil {
		s.t.Fatal(err)
	}
	h.MustRun("wg", "setconf", iface, sc)
	h.MustRun("wg", "set", iface, "private-key", keyFile)
	f, err := os.ReadFile(conf)
	if err != nil {
		s.t.Fatal(err)
	}
	mtu := "1420"
	for _, line := range strings.Split(string(f), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Address":
			for _, a := range strings.Split(v, ",") {
				h.MustRun("ip", "addr", "add", strings.TrimSpace(a), "dev", iface)
			}
		case "MTU":
			mtu = strings.TrimSpace(v)
		}
	}
	h.MustRun("ip", "link", "set", iface, "mtu", mtu, "up")
	h.MustRun("sysctl", "-qp", filepath.Join(dir, "99-gate-hub.conf"))
	h.MustRun("nft", "-f", filepath.Join(dir, "gate-hub.nft"))
	return &Hub{Host: h, Iface: iface, Proc: p, Dir: dir}
}

// Handshaken reports whether the hub has a recent handshake with a peer.
func (hb *Hub) Handshaken() error {
	out, err := hb.Host.Output("wg", "show", hb.Iface, "latest-handshakes")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] != "0" {
			return nil
		}
	}
	return fmt.Errorf("no handshake yet: %q", out)
}
