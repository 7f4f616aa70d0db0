package image

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestSideBySideImage measures what issue "Image" asks: cold and warm
// build time, the root's and each binary's size (target: root ≤ 40 MB),
// and the amd64 twin's boot-to-all-services-ready time under emulation
// with the kernel's own boot time beside it.
func TestSideBySideImage(t *testing.T) {
	netlab.Bench(t, "qemu-system-x86_64")
	dir := t.TempDir()
	c, data := exampleConfig(t, dir)

	t.Setenv("GOCACHE", filepath.Join(dir, "gocache")) // cold: nothing compiled yet
	start := time.Now()
	res := build(t, c, data, "arm64", filepath.Join(dir, "cold.img"))
	netlab.Report(t, "image arm64 cold build", time.Since(start).Seconds(), "s")
	start = time.Now()
	build(t, c, data, "arm64", filepath.Join(dir, "warm.img"))
	netlab.Report(t, "image arm64 warm build", time.Since(start).Seconds(), "s")
	netlab.Report(t, "image arm64 root squashfs", float64(res.RootSize)/1e6, "MB (target <= 40)")
	var paths []string
	for p := range res.Binaries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		netlab.Report(t, "binary "+p, float64(res.Binaries[p])/1e6, "MB")
	}

	// Boot the example site's amd64 twin on a LAN.
	s := site.New(t, site.Options{})
	amd := build(t, c, data, "amd64", filepath.Join(dir, "amd64.img"))
	start = time.Now()
	vm := s.BootGate(amd.Output, amd.PARTUUIDRoot, "52:54:00:00:00:02")
	if err := vm.Proc.WaitFor("Run /gokrazy/init", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	kernel := time.Since(start)
	if err := vm.WaitReady([]string{"vpn", "dyndns", "upsd", "bootstrapd", "bastion"}, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	netlab.Report(t, "amd64 twin (TCG): QEMU start to the kernel running /gokrazy/init", kernel.Seconds(), "s")
	netlab.Report(t, "amd64 twin (TCG): QEMU start to every daemon ready", ready.Seconds(), "s")
}
