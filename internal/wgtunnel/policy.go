package wgtunnel

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Policy routing, so that the bastion sees the admins' real addresses:
// the hub forwards their connections to the gate's tunnel address without
// rewriting the source, and the gate answers them through the tunnel.
//
// For each tunnel address A of the gate (IPv4, and IPv6 for a hub with a
// public IPv6 address):
//
//	rule  from A lookup 51820
//	route default dev IFACE table 51820
//
// and the active hub's peer accepts any source (allowed IPs 0.0.0.0/0, ::/0).
// Whatever the gate sends from a tunnel address goes through the tunnel,
// even to a network it is directly on (an admin's address can be anything;
// wg-quick's "suppress_prefixlength 0" would send those answers out of
// the wrong interface). The gate's own connections use its LAN address.
const (
	routeTable   = 51820
	rulePriority = 10100
)

func policyRules(addrs []netip.Prefix) []*netlink.Rule {
	var rules []*netlink.Rule
	for i, a := range addrs {
		r := netlink.NewRule()
		r.Family = unix.AF_INET
		if a.Addr().Is6() {
			r.Family = unix.AF_INET6
		}
		r.Src = &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Addr().BitLen(), a.Addr().BitLen())}
		r.Table = routeTable
		r.Priority = rulePriority + i
		rules = append(rules, r)
	}
	return rules
}

// enablePolicyRouting installs the rules and the tunnel's default route.
func enablePolicyRouting(ifname string, addrs []netip.Prefix) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("link %s: %w", ifname, err)
	}
	disablePolicyRouting(addrs) // leftovers of a crashed run
	for _, a := range addrs {
		dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if a.Addr().Is6() {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Table: routeTable, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("default route %s via %s in table %d: %w", dst, ifname, routeTable, err)
		}
	}
	for _, rule := range policyRules(addrs) {
		if err := netlink.RuleAdd(rule); err != nil {
			return fmt.Errorf("routing rule from %s lookup %d (priority %d): %w", rule.Src, rule.Table, rule.Priority, err)
		}
	}
	return nil
}

// disablePolicyRouting removes the rules (the table's route goes with the
// interface).
func disablePolicyRouting(addrs []netip.Prefix) {
	for _, rule := range policyRules(addrs) {
		for netlink.RuleDel(rule) == nil {
		}
	}
}
