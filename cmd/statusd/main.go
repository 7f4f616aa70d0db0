// Command statusd serves the site's status page and JSON and sends the
// alerts (see internal/status and internal/alert).
package main

import "gate/internal/mains"

func main() { mains.Statusd() }
