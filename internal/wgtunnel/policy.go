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
// For each tunnel address A of the gate:
//
//	rule  from A lookup 51820
//	route default dev IFACE table 51820
//
// and the active hub's peer accepts any source (allowed IPs 0.0.0.0/0).
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
		if !a.Addr().Is4() {
			continue
		}
		r := netlink.NewRule()
		r.Family = unix.AF_INET
		r.Src = &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}
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
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Table: routeTable, Scope: netlink.SCOPE_LINK}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("default route via %s in table %d: %w", ifname, routeTable, err)
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
