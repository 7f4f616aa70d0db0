// Command vpn keeps the gate's WireGuard tunnel to the site's VPS hubs up:
// kernel WireGuard when the kernel has it, WireGuard in this process on a
// TUN otherwise (-backend forces one), failover between the hubs and the
// status on /metrics. See internal/wgtunnel.
package main

import "gate/internal/mains"

func main() { mains.VPN() }
