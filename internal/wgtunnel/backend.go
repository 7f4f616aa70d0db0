package wgtunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Backend names, for Options.Backend and the logs.
const (
	BackendAuto      = "auto"      // kernel when the kernel has WireGuard, else userspace
	BackendKernel    = "kernel"    // a wireguard link configured over generic netlink (wgctrl)
	BackendUserspace = "userspace" // golang.zx2c4.com/wireguard in this process on a kernel TUN
)

// backend is a WireGuard interface, whoever implements it.
type backend interface {
	Name() string
	Configure(wgtypes.Config) error
	Peers() ([]wgtypes.Peer, error)
	Close() error
}

// openBackend creates the interface ifname with the backend asked for.
// With BackendAuto it tries the kernel first and falls back to userspace;
// reason says why the choice was made.
func openBackend(want, ifname string, mtu int, log *slog.Logger) (b backend, reason string, err error) {
	switch want {
	case BackendKernel:
		b, err = openKernel(ifname, mtu)
		return b, "asked for", err
	case BackendUserspace:
		b, err = openUserspace(ifname, mtu, log)
		return b, "asked for", err
	case BackendAuto, "":
		kb, kerr := openKernel(ifname, mtu)
		if kerr == nil {
			return kb, "the kernel has WireGuard", nil
		}
		b, err = openUserspace(ifname, mtu, log)
		return b, fmt.Sprintf("no kernel WireGuard (%v)", kerr), err
	}
	return nil, "", fmt.Errorf("unknown WireGuard backend %q (auto, kernel or userspace)", want)
}

// deleteStale removes a WireGuard or TUN link left over by a previous run
// (a crash). A link of another kind with that name is an error: never
// delete an interface the tunnel did not make.
func deleteStale(ifname string) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil
	}
	switch l.Type() {
	case "wireguard", "tuntap":
		return netlink.LinkDel(l)
	}
	return fmt.Errorf("interface %s already exists and is a %s link, not a tunnel (choose another vpn.interface)", ifname, l.Type())
}

type kernelBackend struct {
	ifname string
	link   netlink.Link
	wg     *wgctrl.Client
}

func openKernel(ifname string, mtu int) (*kernelBackend, error) {
	if err := deleteStale(ifname); err != nil {
		return nil, err
	}
	link := &netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: ifname, MTU: mtu}}
	if err := netlink.LinkAdd(link); err != nil {
		return nil, fmt.Errorf("creating wireguard link %s: %w", ifname, err)
	}
	c, err := wgctrl.New()
	if err != nil {
		netlink.LinkDel(link)
		return nil, fmt.Errorf("wgctrl: %w", err)
	}
	if _, err := c.Device(ifname); err != nil {
		c.Close()
		netlink.LinkDel(link)
		return nil, fmt.Errorf("wireguard link %s is not reachable over generic netlink: %w", ifname, err)
	}
	return &kernelBackend{ifname: ifname, link: link, wg: c}, nil
}

func (k *kernelBackend) Name() string { return BackendKernel }

func (k *kernelBackend) Configure(c wgtypes.Config) error {
	if err := k.wg.ConfigureDevice(k.ifname, c); err != nil {
		return fmt.Errorf("configuring %s: %w", k.ifname, err)
	}
	return nil
}

func (k *kernelBackend) Peers() ([]wgtypes.Peer, error) {
	d, err := k.wg.Device(k.ifname)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", k.ifname, err)
	}
	for i := range d.Peers {
		if d.Peers[i].LastHandshakeTime.Unix() <= 0 {
			d.Peers[i].LastHandshakeTime = timeZero
		}
	}
	return d.Peers, nil
}

func (k *kernelBackend) Close() error {
	k.wg.Close()
	return netlink.LinkDel(k.link)
}

type userspaceBackend struct {
	ifname string
	dev    *device.Device
}

func openUserspace(ifname string, mtu int, log *slog.Logger) (*userspaceBackend, error) {
	if err := deleteStale(ifname); err != nil {
		return nil, err
	}
	t, err := tun.CreateTUN(ifname, mtu)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("creating TUN %s: %w (is /dev/net/tun there?)", ifname, err)
		}
		return nil, fmt.Errorf("creating TUN %s: %w", ifname, err)
	}
	wl := log.With("backend", BackendUserspace)
	logger := &device.Logger{
		Verbosef: func(string, ...any) {},
		Errorf:   func(f string, a ...any) { wl.Warn("wireguard-go", "err", fmt.Sprintf(f, a...)) },
	}
	dev := device.NewDevice(t, conn.NewDefaultBind(), logger)
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("bringing up %s: %w", ifname, err)
	}
	return &userspaceBackend{ifname: ifname, dev: dev}, nil
}

func (u *userspaceBackend) Name() string { return BackendUserspace }

func (u *userspaceBackend) Configure(c wgtypes.Config) error {
	if err := u.dev.IpcSet(encodeUAPI(c)); err != nil {
		return fmt.Errorf("configuring %s: %w", u.ifname, err)
	}
	return nil
}

func (u *userspaceBackend) Peers() ([]wgtypes.Peer, error) {
	s, err := u.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u.ifname, err)
	}
	return parseUAPI(s)
}

func (u *userspaceBackend) Close() error {
	u.dev.Close()
	return nil
}

// setLink gives ifname its addresses (exactly these) and MTU, and sets it up.
func setLink(ifname string, mtu int, addrs []netip.Prefix) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("link %s: %w", ifname, err)
	}
	if l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("MTU %d on %s: %w", mtu, ifname, err)
		}
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	want := map[netip.Prefix]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for _, a := range have {
		ap, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ap.Unmap(), ones)
		if want[p] {
			delete(want, p)
			continue
		}
		if ap.Is6() && ap.IsLinkLocalUnicast() {
			continue
		}
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("removing %s from %s: %w", p, ifname, err)
		}
	}
	for _, p := range addrs {
		if !want[p] {
			continue
		}
		a, err := netlink.ParseAddr(p.String())
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, ifname, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", ifname, err)
	}
	return nil
}
