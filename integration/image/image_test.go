// Package image tests the gate's image with tools nobody here wrote
// (sfdisk, fsck.vfat, unsquashfs, e2fsck, file), and the amd64 twin booted
// under QEMU: every daemon ready, gokrazy's status page behind the
// password, an over-the-air update to a new build, and a corrupted upload
// refused while the old system keeps running.
package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/config"
	"gate/image"
	"gate/integration/netlab"
	"gate/integration/site"
)

// exampleConfig is the embedded example with secrets generated in dir.
func exampleConfig(t *testing.T, dir string) (*config.Config, []byte) {
	data := config.Example()
	c, err := config.Parse("example.yaml", data, filepath.Join(dir, "secrets"))
	if err != nil && c == nil {
		t.Fatal(err)
	}
	if _, err := c.InitSecrets(); err != nil {
		t.Fatal(err)
	}
	if c, err = config.Parse("example.yaml", data, filepath.Join(dir, "secrets")); err != nil {
		t.Fatal(err)
	}
	return c, data
}

func build(t *testing.T, c *config.Config, data []byte, arch, out string) *image.Result {
	t.Helper()
	res, err := image.Build(context.Background(), image.Options{Config: c, SiteYAML: data, Arch: arch, Output: out, SourceDir: site.RepoRoot()})
	if err != nil {
		t.Fatalf("building %s: %v", arch, err)
	}
	return res
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// extract copies a partition out of the image.
func extract(t *testing.T, img string, p image.Partition, out string) {
	t.Helper()
	run(t, "dd", "if="+img, "of="+out, "bs=512", fmt.Sprintf("skip=%d", p.Start/512), fmt.Sprintf("count=%d", p.Size/512), "status=none")
}

func TestIntegrationImageReaders(t *testing.T) {
	netlab.Require(t, "sfdisk", "fsck.vfat", "unsquashfs", "e2fsck", "file", "dd")
	dir := t.TempDir()
	c, data := exampleConfig(t, dir)
	for _, arch := range []string{"arm64", "amd64"} {
		t.Run(arch, func(t *testing.T) {
			img := filepath.Join(dir, arch+".img")
			res := build(t, c, data, arch, img)
			// /perm holds the secrets: the image is the owner's alone.
			if ls := run(t, "ls", "-l", img); !strings.HasPrefix(ls, "-rw------- ") {
				t.Errorf("ls -l of a fresh image: %s", ls)
			}

			var table struct {
				PartitionTable struct {
					ID         string
					Partitions []struct {
						Start, Size int64
						Type        string
					}
				}
			}
			if err := json.Unmarshal([]byte(run(t, "sfdisk", "--json", img)), &table); err != nil {
				t.Fatal(err)
			}
			ps := table.PartitionTable.Partitions
			if len(ps) != 4 || ps[0].Type != "e" || ps[1].Type != "83" || ps[0].Start != 8192 || ps[3].Start+ps[3].Size != image.DefaultSize/512 {
				t.Errorf("partitions as sfdisk reads them: %+v", ps)
			}
			if want := fmt.Sprintf("0x%08x", res.DiskSignature); table.PartitionTable.ID != want {
				t.Errorf("disk id %s, want %s", table.PartitionTable.ID, want)
			}

			boot, root, perm := filepath.Join(dir, arch+".boot"), filepath.Join(dir, arch+".root"), filepath.Join(dir, arch+".perm")
			extract(t, img, res.Partitions[0], boot)
			extract(t, img, res.Partitions[1], root)
			extract(t, img, res.Partitions[3], perm)
			run(t, "fsck.vfat", "-n", boot)
			run(t, "e2fsck", "-fn", perm)

			list := run(t, "unsquashfs", "-l", root)
			for _, want := range []string{"/gokrazy/init", "/gokrazy/randomd", "/user/gated", "/user/clock", "/user/vpn", "/user/dyndns", "/user/upsd", "/user/bootstrapd", "/user/bastion", "/etc/gate/site.yaml", "/usr/share/gate/ipxe/undionly.kpxe"} {
				if !strings.Contains(list, "squashfs-root"+want+"\n") {
					t.Errorf("root lacks %s", want)
				}
			}
			// Every directory of the root, the root itself first, is
			// 0755: a program that drops privileges (gokrazy's ntp)
			// must be able to reach its own binary.
			for _, line := range strings.Split(run(t, "unsquashfs", "-lls", root), "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "d") && f[0] != "drwxr-xr-x" {
					t.Errorf("root directory not 0755: %s", line)
				}
			}
			// No secret anywhere in the root or the boot partition.
			x := filepath.Join(dir, arch+"-root")
			run(t, "unsquashfs", "-q", "-d", x, root)
			bootBytes, _ := os.ReadFile(boot)
			for _, r := range c.SecretRefs() {
				secret, err := c.ReadSecret(r.Ref)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(bootBytes), string(secret)) {
					t.Errorf("secret %s found in the boot partition", r.Name)
				}
				filepath.Walk(x, func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.Mode().IsRegular() {
						if b, _ := os.ReadFile(p); strings.Contains(string(b), string(secret)) {
							t.Errorf("secret %s found in the root at %s", r.Name, p)
						}
					}
					return nil
				})
			}
			want := map[string]string{"arm64": "ARM aarch64", "amd64": "x86-64"}[arch]
			// The daemons are links to one multi-call binary.
			for _, d := range []string{"clock", "vpn", "dyndns", "upsd", "bootstrapd", "bastion"} {
				if target, err := os.Readlink(filepath.Join(x, "user", d)); err != nil || target != "gated" {
					t.Errorf("/user/%s: link to %q (%v), want gated", d, target, err)
				}
			}
			// The daemons know the source revision they were built from
			// (dyndns's User-Agent), though the image's builds carry no
			// VCS stamp.
			if rev, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
				gated, _ := os.ReadFile(filepath.Join(x, "user", "gated"))
				if r := strings.TrimSpace(string(rev)); !strings.Contains(string(gated), r) {
					t.Errorf("/user/gated does not carry the source revision %s", r)
				}
			}
			for _, bin := range []string{"gokrazy/init", "user/gated", "gokrazy/randomd"} {
				if out := run(t, "file", filepath.Join(x, bin)); !strings.Contains(out, want) || !strings.Contains(out, "statically linked") {
					t.Errorf("%s: %s", bin, out)
				}
			}
			// Secrets are on /perm, 0600.
			ls := run(t, "debugfs", "-R", "ls -l /gate/secrets", perm)
			if !strings.Contains(ls, "100600") || !strings.Contains(ls, "wireguard.key") {
				t.Errorf("perm secrets:\n%s", ls)
			}
		})
	}
	// Reproducible: the same inputs give the same bytes. (The
	// source date is pinned: the checkout's commit time is an input too.)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	a := build(t, c, data, "amd64", filepath.Join(dir, "a.img"))
	b := build(t, c, data, "amd64", filepath.Join(dir, "b.img"))
	if a.SHA256 != b.SHA256 || a.BuildTimestamp != b.BuildTimestamp {
		t.Errorf("two builds differ: %s %s / %s %s", a.SHA256, a.BuildTimestamp, b.SHA256, b.BuildTimestamp)
	}
}

const testSite = `site: {name: imgtest}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-1, address: 192.168.1.2/24}
ups: {source: "nut://192.168.1.30/ups"}
`

// TestIntegrationImageBootAndUpdate boots the amd64 twin, checks gokrazy's
// status page and the password, updates it over the air to a new build,
// then shows that a corrupted upload is refused and the system stays.
func TestIntegrationImageBootAndUpdate(t *testing.T) {
	netlab.Require(t, "qemu-system-x86_64", "curl")
	s := site.New(t, site.Options{})
	dir := s.Dir
	gateCLI := netlab.Build(t, "gate/gate")
	siteFile := filepath.Join(dir, "site.yaml")
	os.WriteFile(siteFile, []byte(testSite), 0o644)
	if out, err := exec.Command(gateCLI, "secrets", "init", "-c", siteFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	curlrc, err := site.GokrazyAuth(t.TempDir(), filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}

	img, partuuid := s.BuildImage(gateCLI, siteFile)
	vm := s.BootGate(img, partuuid, "52:54:00:00:00:02")
	if err := vm.WaitReady([]string{"upsd"}, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	status := func(auth bool) (string, error) {
		args := []string{"curl", "-s", "-m", "5", "-H", "Accept: application/json", "-w", "\n%{http_code}"}
		if auth {
			args = append(args, "-K", curlrc)
		}
		return s.Box.Output(append(args, "http://192.168.1.2/")...)
	}
	var out string
	if err := netlab.Eventually(60*time.Second, time.Second, func() error {
		var err error
		out, err = status(true)
		if err == nil && !strings.HasSuffix(out, "\n200") {
			err = fmt.Errorf("status page: %q", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "BuildTimestamp") {
		t.Errorf("status page without a build timestamp: %s", out)
	}
	if out, _ := status(false); !strings.HasSuffix(out, "\n401") {
		t.Errorf("status page without the password: %q, want 401", out)
	}

	// A new build, pushed over the air.
	imgB := filepath.Join(dir, "b.img")
	cmd := exec.Command(gateCLI, "image", "-c", siteFile, "--arch", "amd64", "-o", imgB, "--build-timestamp", "test-build-B")
	cmd.Dir = site.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	start := time.Now()
	upd, err := s.Box.Run(gateCLI, "update", "-c", siteFile, "--image", imgB, "--host", "192.168.1.2", "--wait", "4m")
	if err != nil {
		t.Fatalf("gate update: %v\n%s\nconsole:\n%s", err, upd, site.Tail(vm.Proc.Output(), 30))
	}
	t.Logf("update to build B took %s:\n%s", time.Since(start).Round(time.Second), upd)
	if out, _ := status(true); !strings.Contains(out, "test-build-B") {
		t.Fatalf("after the update the gate reports %s", out)
	}

	// The same update through a proxy that corrupts one byte: refused,
	// nothing switched, build B keeps running.
	proxy := s.Box.Start("corruptproxy", nil, netlab.Build(t, "gate/integration/image/corruptproxy"), "-listen", "192.168.1.1:80", "-target", "http://192.168.1.2:80")
	if err := proxy.WaitFor("listening", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	imgC := filepath.Join(dir, "c.img")
	cmd = exec.Command(gateCLI, "image", "-c", siteFile, "--arch", "amd64", "-o", imgC, "--build-timestamp", "test-build-C")
	cmd.Dir = site.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	upd, err = s.Box.Run(gateCLI, "update", "-c", siteFile, "--image", imgC, "--host", "192.168.1.1", "--wait", "30s")
	if err == nil || !strings.Contains(upd, "corrupted") {
		t.Fatalf("a corrupted upload was not refused: %v\n%s", err, upd)
	}
	time.Sleep(3 * time.Second)
	if out, _ := status(true); !strings.Contains(out, "test-build-B") {
		t.Fatalf("after the refused update the gate reports %s", out)
	}

	// The boot partition alone corrupted on its first upload (gokrazy
	// writes it in place): sent again until its hash matches, and the
	// gate boots build C from it.
	s.Box.MustRun("ip", "addr", "add", "192.168.1.3/24", "dev", "lan0")
	bootProxy := s.Box.Start("corruptproxy-boot", nil, netlab.Build(t, "gate/integration/image/corruptproxy"), "-listen", "192.168.1.3:80",
		"-target", "http://192.168.1.2:80", "-only", "/update/boot", "-times", "1")
	if err := bootProxy.WaitFor("listening", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Longer than Run's two minutes: two boot uploads and a reboot.
	up := s.Box.Start("gate-update-boot", nil, gateCLI, "update", "-c", siteFile, "--image", imgC, "--host", "192.168.1.3", "--wait", "4m")
	select {
	case <-up.Done():
	case <-time.After(8 * time.Minute):
		t.Fatalf("gate update did not end:\n%s", up.Output())
	}
	upd = up.Output()
	if err := up.Err(); err != nil {
		t.Fatalf("an update whose first boot upload was corrupted: %v\n%s\nconsole:\n%s", err, upd, site.Tail(vm.Proc.Output(), 30))
	}
	if !strings.Contains(upd, "boot partition upload 1 of 5 failed") || !strings.Contains(bootProxy.Output(), "corrupting /update/boot") {
		t.Errorf("the boot upload was not corrupted and sent again:\n%s", upd)
	}
	if out, _ := status(true); !strings.Contains(out, "test-build-C") {
		t.Fatalf("after the repaired boot upload the gate reports %s", out)
	}
}
