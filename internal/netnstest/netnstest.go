// Package netnstest puts a test in a network namespace of its own, so
// that it can change interfaces, routes and nftables without touching the
// machine's.
package netnstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// Enter moves the calling test's goroutine, locked to its thread, into a
// new network namespace until the test ends. Without root it skips the
// test, or fails it when CI=true (a skip there would hide the test).
func Enter(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (a network namespace of its own)")
		}
		t.Skip("needs root (a network namespace of its own)")
	}
	// Never unlocked: the thread ends with the test and Go discards it,
	// whatever namespace it is in then.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		ns.Close()
		orig.Close()
	})
}
