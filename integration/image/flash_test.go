package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationFlashLoopDevice: `gate flash` writes the arm64 image (as
// `make image` builds it) to a real block device, a loop device over a
// file larger than the image, as an SD card would be. Read back from the
// device, the bytes are the image's; sfdisk and fsck.vfat read the
// device's partitions; the kernel sees them (partx). With one of its
// partitions mounted, the device is refused and left as it was; without
// --yes and without "yes" typed, nothing is written.
func TestIntegrationFlashLoopDevice(t *testing.T) {
	netlab.Require(t, "losetup", "partx", "sfdisk", "fsck.vfat", "mount", "umount")
	dir := t.TempDir()
	gateCLI := netlab.Build(t, "gate/gate")
	siteFile := filepath.Join(dir, "site.yaml")
	os.WriteFile(siteFile, []byte(testSite), 0o644)
	if out, err := exec.Command(gateCLI, "secrets", "init", "-c", siteFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	img := filepath.Join(dir, "gate.img")
	cmd := exec.Command(gateCLI, "image", "-c", siteFile, "--arch", "arm64", "-o", img)
	cmd.Dir = site.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gate image: %v\n%s", err, out)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}

	// The "SD card": a sparse file half as large again as the image.
	card := filepath.Join(dir, "card")
	if err := os.WriteFile(card, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(card, st.Size()*3/2); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", "--partscan", card))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })

	flash := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(gateCLI, append([]string{"flash", "--image", img}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := flash("no\n", dev); err == nil || !strings.Contains(out, "nothing written") {
		t.Fatalf("gate flash without confirmation: %v\n%s", err, out)
	}
	if sum := sha256Of(t, dev, st.Size()); sum == sha256Of(t, img, st.Size()) {
		t.Fatal("the device holds the image although the flash was not confirmed")
	}

	out, err := flash("", "--yes", dev)
	if err != nil {
		t.Fatalf("gate flash --yes %s: %v\n%s", dev, err, out)
	}
	want := sha256Of(t, img, st.Size())
	if got := sha256Of(t, dev, st.Size()); got != want {
		t.Fatalf("read back from %s: sha256 %s, the image's %s", dev, got, want)
	}
	if !strings.Contains(out, want) {
		t.Errorf("gate flash did not print the image's sha256 %s:\n%s", want, out)
	}

	// The kernel reads the new partition table (partx: BLKRRPART is
	// refused on loop devices without partscan); independent tools read
	// the partitions.
	var table struct {
		PartitionTable struct{ Partitions []struct{ Node, Type string } }
	}
	if err := json.Unmarshal([]byte(run(t, "sfdisk", "--json", dev)), &table); err != nil {
		t.Fatal(err)
	}
	if n := len(table.PartitionTable.Partitions); n != 4 {
		t.Fatalf("sfdisk reads %d partitions on %s, want 4", n, dev)
	}
	run(t, "partx", "-a", dev)
	t.Cleanup(func() { exec.Command("partx", "-d", dev).Run() })
	boot := partitionNode(t, dev, 1)
	perm := partitionNode(t, dev, 4)
	run(t, "fsck.vfat", "-n", boot)

	// /perm mounted (ext4): the device is refused and left alone.
	mnt := filepath.Join(dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	run(t, "mount", "-o", "ro", "-t", "ext4", perm, mnt)
	defer exec.Command("umount", mnt).Run()
	if _, err := os.Stat(filepath.Join(mnt, "gate")); err != nil {
		t.Errorf("the flashed /perm has no gate directory: %v", err)
	}
	if out, err := flash("", "--yes", dev); err == nil || !strings.Contains(out, "mounted on "+mnt) {
		t.Fatalf("gate flash onto a device with a mounted partition: %v\n%s", err, out)
	}
	if out, err := flash("", "--yes", boot); err == nil || !strings.Contains(out, "is a partition") {
		t.Fatalf("gate flash onto a partition: %v\n%s", err, out)
	}
	if got := sha256Of(t, dev, st.Size()); got != want {
		t.Fatalf("a refused flash changed %s", dev)
	}
}

// partitionNode is partition n of dev as a block device: the kernel's
// /dev node, or one made from sysfs where no udev makes it (removed at
// the end of the test).
func partitionNode(t *testing.T, dev string, n int) string {
	t.Helper()
	node := fmt.Sprintf("%sp%d", dev, n)
	if _, err := os.Stat(node); err == nil {
		return node
	}
	name := filepath.Base(node)
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), name, "dev"))
	if err != nil {
		t.Fatalf("the kernel made no partition %s: %v", name, err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err != nil {
		t.Fatalf("%s: dev %q: %v", name, b, err)
	}
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatalf("mknod %s: %v", node, err)
	}
	t.Cleanup(func() { os.Remove(node) })
	return node
}

// sha256Of hashes the first n bytes of path.
func sha256Of(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if m, err := io.Copy(h, io.LimitReader(f, n)); err != nil || m != n {
		t.Fatalf("reading %s: %d of %d bytes: %v", path, m, n, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
