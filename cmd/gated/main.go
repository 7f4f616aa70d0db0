// Command gated is every gate daemon in one binary: it runs the daemon its
// name says (/user/upsd → upsd; the image makes /user/<daemon> symbolic
// links to /user/gated), or the one named by its first argument:
//
//	gated upsd -config /etc/gate/site.yaml
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gate/internal/mains"
)

func main() {
	if m, ok := mains.Lookup(filepath.Base(os.Args[0])); ok {
		m()
		return
	}
	if len(os.Args) > 1 {
		if m, ok := mains.Lookup(os.Args[1]); ok {
			os.Args = append([]string{os.Args[1]}, os.Args[2:]...)
			m()
			return
		}
	}
	fmt.Fprintf(os.Stderr, "usage: gated DAEMON [flags]  (or run it as a link named after the daemon)\ndaemons: %s\n", strings.Join(mains.Names(), " "))
	os.Exit(2)
}
