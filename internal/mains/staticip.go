package mains

import (
	"flag"
	"fmt"
	"gate/internal/resolvconf"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

type dnsList []string

func (d *dnsList) String() string     { return strings.Join(*d, ",") }
func (d *dnsList) Set(v string) error { *d = append(*d, v); return nil }

// StaticIP runs staticip, which gives the gate its static LAN address from the site file
// (gate.address), in place of gokrazy's DHCP client: it sets the address on
// the interface, brings it up, adds the default route and writes
// /etc/resolv.conf (a link to /tmp/resolv.conf on gokrazy, replaced
// atomically as gokrazy's DHCP client does, see internal/resolvconf). Then it exits
// with status 125, which tells gokrazy's supervisor not to restart it.
func StaticIP() {
	iface := flag.String("interface", "eth0", "the LAN interface")
	address := flag.String("address", "", "address with prefix length, e.g. 192.168.1.2/24")
	gateway := flag.String("gateway", "", "default gateway")
	resolv := flag.String("resolv", "/etc/resolv.conf", "resolver configuration to write")
	var dns dnsList
	flag.Var(&dns, "dns", "DNS server (repeatable)")
	flag.Parse()
	if err := configureStaticIP(*iface, *address, *gateway, dns, *resolv); err != nil {
		log.Printf("staticip: %v", err)
		os.Exit(1) // gokrazy retries
	}
	log.Printf("staticip: %s on %s, gateway %s", *address, *iface, *gateway)
	os.Exit(125)
}

func configureStaticIP(iface, address, gateway string, dns []string, resolv string) error {
	pfx, err := netip.ParsePrefix(address)
	if err != nil {
		return fmt.Errorf("address %q: %v", address, err)
	}
	var link netlink.Link
	// The NIC's driver may still be probing right after boot.
	for i := 0; ; i++ {
		if link, err = netlink.LinkByName(iface); err == nil {
			break
		}
		if i == 50 {
			return fmt.Errorf("interface %s: %v", iface, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ipnet := &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("address %s on %s: %v", address, iface, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %v", iface, err)
	}
	if gateway != "" {
		gw := net.ParseIP(gateway)
		if gw == nil {
			return fmt.Errorf("gateway %q is not an IP", gateway)
		}
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
			return fmt.Errorf("default route via %s: %v", gateway, err)
		}
	}
	var servers []netip.Addr
	for _, d := range dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return fmt.Errorf("DNS server %q: %v", d, err)
		}
		servers = append(servers, a)
	}
	return resolvconf.Write(resolv, servers)
}
