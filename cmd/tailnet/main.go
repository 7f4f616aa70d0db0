// Command tailnet makes the gate a node of a tailnet (Tailscale or
// Headscale) that offers the bastion, NUT read-only and the daemons'
// metrics to the tailnet's members, see internal/tailnet. On the gate it
// is /user/tailnet, a name of cmd/gated built with the tailnet tag (only
// for a site with a tailnet section: tsnet more than doubles the binary).
package main

import "gate/internal/tailnet"

func main() { tailnet.Main() }
