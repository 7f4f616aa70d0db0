// Package lanroute keeps the LAN's on-link IPv4 route beside gokrazy's
// DHCP client (gate.address dhcp).
//
// That client moves the routes of its interface to its own metric by
// adding a copy and deleting the original, and does so from two
// goroutines (applying a lease; following the carrier) that can run at
// once. Most likely through that race (a delete with no metric removes
// whichever of the two routes comes first), the leased address is now and
// then left with no route to its subnet at all. The client's next step, the default route through the
// box, then fails with "network is unreachable": it exits before it
// writes /etc/resolv.conf, restarts, finds the address already there (so
// the kernel adds no route again) and fails the same way, forever. The
// gate then has an address, no LAN and no name servers, until the next
// power cut. Seen on the emulated Pi about once in six power-ons
// (integration/site TestPowerCycles); a real Pi's USB NIC and a box that
// boots at the same time after an outage make the same carrier changes.
//
// Watch puts the missing route back (metric 1, the one gokrazy's client
// gives eth*): the client's next start then completes.
package lanroute

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Metric is the metric of a route put back (gokrazy's DHCP client's for
// eth* interfaces).
const Metric = 1

// Missing returns the on-link prefixes of addrs (IPv4, shorter than /32)
// that no route in routes leads to.
func Missing(addrs []netip.Prefix, routes []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		if !a.Addr().Is4() || a.Bits() >= 32 || a.Bits() <= 0 {
			continue
		}
		p := a.Masked()
		if !slices.Contains(routes, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Repair adds the on-link routes missing for the IPv4 addresses of the
// interface named iface, in the main table, and returns what it added.
// An interface that does not exist (yet) is not an error.
func Repair(iface string) ([]netip.Prefix, error) {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return nil, nil
		}
		return nil, fmt.Errorf("interface %s: %w", iface, err)
	}
	as, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", iface, err)
	}
	var addrs []netip.Prefix
	src := map[netip.Prefix]netip.Addr{}
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok || a.IPNet == nil {
			continue
		}
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip, ones)
		addrs = append(addrs, p)
		if _, seen := src[p.Masked()]; !seen {
			src[p.Masked()] = ip
		}
	}
	rs, err := netlink.RouteList(link, netlink.FAMILY_V4) // the main table
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", iface, err)
	}
	var routes []netip.Prefix
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		routes = append(routes, netip.PrefixFrom(ip, ones))
	}
	missing := Missing(addrs, routes)
	for _, p := range missing {
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)},
			Src:       src[p].AsSlice(),
			Scope:     netlink.SCOPE_LINK,
			Protocol:  unix.RTPROT_KERNEL,
			Priority:  Metric,
		}
		if err := netlink.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("route to %s on %s: %w", p, iface, err)
		}
	}
	return missing, nil
}

// Watch checks iface every interval (default 2 s) until ctx ends, putting
// missing routes back and logging each one put back.
func Watch(ctx context.Context, log *slog.Logger, iface string, every time.Duration) {
	if every <= 0 {
		every = 2 * time.Second
	}
	var lastErr string // logged once until it changes
	for {
		added, err := Repair(iface)
		for _, p := range added {
			log.Warn("the LAN's route was missing beside a DHCP address: put back", "interface", iface, "route", p, "metric", Metric)
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != "" && msg != lastErr {
			log.Error("checking the LAN's route", "interface", iface, "err", err)
		}
		lastErr = msg
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
