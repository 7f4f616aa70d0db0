package image

import (
	"os"
	"os/exec"
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

// TestSideBySideImageFreshMachine measures what a fresh laptop lives
// through: `gate image --arch arm64` (what `make image` runs, through `go
// run`) with an empty module cache and an empty build cache (cold: every
// module downloaded from the proxy, everything compiled), then again with
// both filled (warm). The caches are temporary directories: the
// machine's own are never touched.
func TestSideBySideImageFreshMachine(t *testing.T) {
	netlab.Bench(t, "go")
	dir := t.TempDir()
	siteFile := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(siteFile, []byte(testSite), 0o644); err != nil {
		t.Fatal(err)
	}
	// The secrets, as the user makes them first (with this machine's
	// caches: only gate image is measured).
	if out, err := exec.Command(netlab.Build(t, "gate/gate"), "secrets", "init", "-c", siteFile).CombinedOutput(); err != nil {
		t.Fatalf("gate secrets init: %v\n%s", err, out)
	}
	env := append(os.Environ(),
		"GOMODCACHE="+filepath.Join(dir, "modcache"),
		"GOCACHE="+filepath.Join(dir, "gocache"),
		"GOFLAGS=-modcacherw -buildvcs=false", // so that the temporary module cache can be removed
	)
	build := func(label string) {
		start := time.Now()
		cmd := exec.Command("go", "run", "./gate", "image", "-c", siteFile, "--arch", "arm64", "-o", filepath.Join(dir, label+".img"))
		cmd.Dir = site.RepoRoot()
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s gate image: %v\n%s", label, err, out)
		}
		netlab.Report(t, "gate image arm64 via go run, "+label+" module and build caches", time.Since(start).Seconds(), "s")
	}
	build("empty")
	build("warm")
}
