package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLean: lanroute runs all the time on every DHCP site, so it links
// none of the daemons' packages (importing them all, for their package
// initialisation alone, made a process of 9.4 MB resident instead of 2.2
// on amd64).
func TestLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, banned := range []string{
		"gate/config",
		"gate/internal/daemon",
		"gate/internal/mains",
		"gate/internal/metrics",
		"net/http",
	} {
		for _, d := range deps {
			if d == banned {
				t.Errorf("lanroute links %s", banned)
			}
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages: %q", len(deps), out)
	}
}
