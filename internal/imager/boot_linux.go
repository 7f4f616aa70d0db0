package imager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BootConfig is what the kernel command line tells the imager.
type BootConfig struct {
	Bootstrap string // gate.bootstrap=URL: bootstrapd's base URL
	OnFail    string // gate.onfail=poweroff (default) or wait
	// Bench (gate.bench=download) only downloads the job's image to
	// nowhere and reports the rate: the link's limit, for make bench.
	Bench string
}

// ParseCmdline reads the imager's settings from /proc/cmdline's text.
func ParseCmdline(cmdline string) (BootConfig, error) {
	c := BootConfig{OnFail: "poweroff"}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "gate.bootstrap":
			c.Bootstrap = v
		case "gate.onfail":
			c.OnFail = v
		case "gate.bench":
			c.Bench = v
		}
	}
	if c.Bootstrap == "" {
		return c, errors.New("kernel command line has no gate.bootstrap=URL")
	}
	if !strings.HasPrefix(c.Bootstrap, "http://") && !strings.HasPrefix(c.Bootstrap, "https://") {
		return c, fmt.Errorf("gate.bootstrap=%q is not an http(s) URL", c.Bootstrap)
	}
	if c.OnFail != "poweroff" && c.OnFail != "wait" {
		return c, fmt.Errorf("gate.onfail=%q: want poweroff or wait", c.OnFail)
	}
	return c, nil
}

// Consoles lists the devices of the console= arguments of a kernel
// command line (/dev/ttyS0 for console=ttyS0,115200); the kernel's
// /dev/console is only the last of them.
func Consoles(cmdline string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, "console=")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(v, ",")
		if name == "" || strings.ContainsAny(name, "/.") || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, "/dev/"+name)
	}
	return out
}

// MountEssentials mounts /proc, /sys, /dev and /tmp in the initramfs and
// points stdout and stderr at the console.
func MountEssentials() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		unix.Dup2(int(c.Fd()), 1)
		unix.Dup2(int(c.Fd()), 2)
	}
	return nil
}

// Lease is the network configuration DHCP gave one interface.
type Lease struct {
	Iface string
	MAC   net.HardwareAddr
	IP    net.IPNet
}

// BringUpNetwork brings every Ethernet interface up and configures the
// first one that gets a DHCP lease (address, default route, resolv.conf).
func BringUpNetwork(ctx context.Context, log *slog.Logger) (Lease, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		links, err := netlink.LinkList()
		if err != nil {
			return Lease{}, fmt.Errorf("list network interfaces: %w", err)
		}
		var tried []string
		for _, l := range links {
			a := l.Attrs()
			if a.Name == "lo" || len(a.HardwareAddr) != 6 || l.Type() != "device" {
				continue
			}
			tried = append(tried, a.Name)
			if err := netlink.LinkSetUp(l); err != nil {
				log.Warn("link up", "iface", a.Name, "err", err)
				continue
			}
			waitCarrier(ctx, a.Name, 10*time.Second)
			lease, err := dhcp(ctx, l)
			if err != nil {
				log.Warn("dhcp", "iface", a.Name, "attempt", attempt, "err", err)
				continue
			}
			return lease, nil
		}
		if len(tried) == 0 && attempt > 5 {
			return Lease{}, errors.New("no Ethernet interface found (is the NIC's driver in the kernel?)")
		}
		if time.Now().After(deadline) {
			return Lease{}, fmt.Errorf("no DHCP lease on %s after 2 minutes", strings.Join(tried, ", "))
		}
		select {
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func waitCarrier(ctx context.Context, iface string, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if readTrim(filepath.Join("/sys/class/net", iface, "carrier")) == "1" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dhcp(ctx context.Context, l netlink.Link) (Lease, error) {
	a := l.Attrs()
	c, err := nclient4.New(a.Name, nclient4.WithTimeout(4*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return Lease{}, fmt.Errorf("dhcp client on %s: %w", a.Name, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lease, err := c.Request(ctx)
	if err != nil {
		return Lease{}, fmt.Errorf("dhcp on %s: %w", a.Name, err)
	}
	ack := lease.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	ipn := net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}
	if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: &ipn}); err != nil {
		return Lease{}, fmt.Errorf("address %s on %s: %w", ipn.String(), a.Name, err)
	}
	if r := dhcpv4.GetIPs(dhcpv4.OptionRouter, ack.Options); len(r) > 0 {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: a.Index, Gw: r[0]}); err != nil {
			return Lease{}, fmt.Errorf("default route via %s on %s: %w", r[0], a.Name, err)
		}
	}
	if dns := ack.DNS(); len(dns) > 0 {
		var b strings.Builder
		for _, d := range dns {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		os.MkdirAll("/etc", 0o755)
		os.WriteFile("/etc/resolv.conf", []byte(b.String()), 0o644)
	}
	return Lease{Iface: a.Name, MAC: a.HardwareAddr, IP: ipn}, nil
}

// RereadPartitions asks the kernel to re-read the disk's partition table
// and waits for the partition's device node.
func RereadPartitions(f *os.File, partDev string) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("re-read partition table of %s: %w", f.Name(), err)
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(partDev); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear after re-reading the partition table", partDev)
}

// Seed mounts partDev (ext4) at dir, writes the NoCloud seed and unmounts.
func Seed(partDev, dir string, job Job) error {
	os.MkdirAll(dir, 0o755)
	if err := unix.Mount(partDev, dir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s (ext4) on %s: %w", partDev, dir, err)
	}
	werr := WriteSeed(dir, job)
	unix.Sync()
	if err := unix.Unmount(dir, 0); err != nil && werr == nil {
		werr = fmt.Errorf("unmount %s: %w", dir, err)
	}
	return werr
}

// Reboot restarts the machine (after a sync).
func Reboot() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// PowerOff turns the machine off (after a sync).
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
