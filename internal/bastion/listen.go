package bastion

import (
	"net"
	"strconv"

	"gate/config"
)

// ListenAddrs are the addresses the bastion listens on: the gate's tunnel
// address on each hub, and its LAN address if bastion.listen_lan. When the
// LAN address is not static (DHCP), the bastion listens on every address
// of the gate instead: Linux refuses a wildcard listener beside specific
// ones on the same port, and the wildcard covers the tunnel too.
func ListenAddrs(c *config.Config) []string {
	port := strconv.Itoa(c.Bastion.Port)
	if c.Bastion.ListenLAN {
		if _, ok := c.GateAddr(); !ok {
			return []string{net.JoinHostPort("", port)}
		}
	}
	var addrs []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	if c.VPN != nil {
		for _, h := range c.VPN.Hubs {
			add(net.JoinHostPort(h.GateAddress.Addr().String(), port))
			if a := h.GateAddress6(); a.IsValid() {
				add(net.JoinHostPort(a.Addr().String(), port))
			}
		}
	}
	if c.Bastion.ListenLAN {
		p, _ := c.GateAddr()
		add(net.JoinHostPort(p.Addr().String(), port))
	}
	return addrs
}
