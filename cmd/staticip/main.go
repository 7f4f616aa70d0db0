// Command staticip gives the gate its static LAN address from the site file
// (gate.address), in place of gokrazy's DHCP client: it sets the address on
// the interface, brings it up, adds the default route and writes
// /etc/resolv.conf (a link to /tmp/resolv.conf on gokrazy). Then it exits
// with status 125, which tells gokrazy's supervisor not to restart it.
package main

import "gate/internal/mains"

func main() { mains.StaticIP() }
