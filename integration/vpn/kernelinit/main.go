// Command kernelinit is the /init of the initramfs that TestIntegrationKernelBackendQEMU
// boots with gokrazy's kernel.amd64 (which has WireGuard built in): it
// mounts the pseudo file systems, configures eth0 from the kernel command
// line (gate.addr=CIDR gate.gw=IP), runs /vpn with -backend kernel and
// powers off when it exits. It is a test fixture, not part of the image.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func main() {
	os.MkdirAll("/dev", 0o755)
	unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd < 3; fd++ {
			unix.Dup3(int(c.Fd()), fd, 0)
		}
	}
	err := run()
	fmt.Println("kernelinit:", err)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	for _, m := range []struct{ src, dir, fs string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"tmpfs", "/tmp", "tmpfs"}, {"tmpfs", "/run", "tmpfs"}} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %v", m.dir, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	var addr, gw string
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "gate.addr="); ok {
			addr = v
		}
		if v, ok := strings.CutPrefix(f, "gate.gw="); ok {
			gw = v
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	netlink.LinkSetUp(lo)
	var eth netlink.Link
	for i := 0; i < 100; i++ {
		if eth, err = netlink.LinkByName("eth0"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("eth0: %v", err)
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("gate.addr=%q: %v", addr, err)
	}
	if err := netlink.AddrAdd(eth, a); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(eth); err != nil {
		return err
	}
	if err := netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)}); err != nil {
		return fmt.Errorf("default route via %q: %v", gw, err)
	}
	fmt.Println("kernelinit: network up", addr, "via", gw)
	cmd := exec.Command("/vpn", "-config", "/etc/gate/site.yaml", "-secrets", "/secrets", "-state", "/tmp/vpn", "-metrics", "", "-backend", "kernel")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return fmt.Errorf("vpn exited: %v", cmd.Run())
}
