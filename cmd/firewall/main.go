// Command firewall sets the gate's nftables input policy at boot: on the
// tunnel only the bastion's port, sources never the LAN's; the gate's
// services for the LAN only. See internal/firewall.
package main

import "gate/internal/mains"

func main() { mains.Firewall() }
