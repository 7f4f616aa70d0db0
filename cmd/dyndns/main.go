// Command dyndns keeps the site's DNS records on the box's public address
// (see internal/dyndns and internal/publicip).
package main

import "gate/internal/mains"

func main() { mains.DynDNS() }
