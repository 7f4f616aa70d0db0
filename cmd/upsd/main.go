// Command upsd watches the UPS, serves it over NUT to the site's hosts and,
// when the UPS is critical, shuts the site down in order (see
// internal/upsd and internal/powerplan).
package main

import "gate/internal/mains"

func main() { mains.UPSD() }
