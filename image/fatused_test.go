package image

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// buildBoot writes tr as the builder writes the boot partition (writeFAT,
// fixFAT16) and returns the partition's bytes.
func buildBoot(t *testing.T, tr *tree) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot.img")
	d, err := diskfs.Create(p, (bootStart+bootSectors)*sector, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	table := &mbr.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector,
		Partitions: []*mbr.Partition{{Index: 1, Bootable: true, Type: mbr.Fat16bLBA, Start: bootStart, Size: bootSectors}}}
	if err := d.Partition(table); err != nil {
		t.Fatal(err)
	}
	if err := writeFAT(d, tr); err != nil {
		t.Fatal(err)
	}
	if err := fixFAT16(d, bootStart*sector); err != nil {
		t.Fatal(err)
	}
	d.Close()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b[bootStart*sector:]
}

// bootLike is a boot tree shaped like the Pi's: a big kernel, firmware,
// and a directory of many small overlays (its directory grows past one
// cluster after other files were written).
func bootLike() (*tree, map[string][]byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"/cmdline.txt":           []byte("console=tty1 root=PARTUUID=2a4e0aa1-02 init=/gokrazy/init" + strings.Repeat(" ", 80) + "\n"),
		"/config.txt":            []byte("arm_control=0x200\nenable_uart=1\nkernel=vmlinuz\n"),
		"/start.elf":             data(2048), // exactly one cluster
		"/bootcode.bin":          data(2049), // one byte into a second
		"/vmlinuz":               data(3<<20 + 17),
		"/bcm2710-rpi-3-b.dtb":   data(31000),
		"/overlays/README":       data(5000),
		"/overlays/zz-last.dtbo": data(70001),
	}
	for i := range 150 {
		files[fmt.Sprintf("/overlays/overlay-with-a-long-name-%03d.dtbo", i)] = data(100 + 97*i)
	}
	tr := newTree()
	for p, b := range files {
		tr.parents(p)
		tr.file(p, 0o644, b)
	}
	return tr, files
}

// TestBootPrefixHoldsEveryFile: the boot partition cut at fatUsed, with
// garbage after the cut (what a prefix upload leaves of the old partition
// on the gate), is the whole file system: an independent FAT reader
// (mtools) reads every file back byte for byte, and fsck.vfat finds
// nothing wrong. Cut one cluster shorter, some file no longer reads back:
// the check sees a prefix cut too short.
func TestBootPrefixHoldsEveryFile(t *testing.T) {
	mcopy, err := exec.LookPath("mcopy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mcopy (mtools) missing on CI: %v", err)
		}
		t.Skipf("mcopy (mtools) missing: %v", err)
	}
	tr, files := bootLike()
	boot := buildBoot(t, tr)
	used, err := fatUsed(boot)
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, b := range files {
		total += len(b)
	}
	if used < int64(total) || used > int64(total)+1<<20 {
		t.Fatalf("fatUsed = %d for %d bytes of files in a %d-byte partition", used, total, len(boot))
	}
	t.Logf("%d files, %d bytes: prefix %d of %d bytes", len(files), total, used, len(boot))

	// withTail is the first n bytes of boot, then garbage to the end.
	withTail := func(n int64) string {
		img := bytes.Clone(boot)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := n; i < int64(len(img)); i++ {
			img[i] = byte(rng.Uint32())
		}
		p := filepath.Join(t.TempDir(), "prefix.img")
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// differing lists the files that do not read back as written.
	differing := func(img string) []string {
		var bad []string
		for p, want := range files {
			got, err := exec.Command(mcopy, "-n", "-i", img, "::"+p, "-").Output()
			if err != nil || !bytes.Equal(got, want) {
				bad = append(bad, fmt.Sprintf("%s (%d bytes read, %d written, %v)", p, len(got), len(want), err))
			}
		}
		return bad
	}
	img := withTail(used)
	if bad := differing(img); len(bad) > 0 {
		t.Errorf("after a prefix of %d bytes, files read back wrong:\n%s", used, strings.Join(bad, "\n"))
	}
	if fsck, err := exec.LookPath("fsck.vfat"); err == nil {
		if out, err := exec.Command(fsck, "-n", img).CombinedOutput(); err != nil {
			t.Errorf("fsck.vfat -n on the prefix and garbage: %v\n%s", err, out)
		}
	}
	const cluster = 4 * sector // go-diskfs's FAT16 at 100 MiB
	if bad := differing(withTail(used - cluster)); len(bad) == 0 {
		t.Errorf("a prefix one cluster shorter (%d bytes) still reads every file back: the check cannot see a short cut", used-cluster)
	}
}

func TestFatUsedRefuses(t *testing.T) {
	tr, _ := bootLike()
	good := buildBoot(t, tr)
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:100] }},
		{"no signature", func(b []byte) []byte { b[510] = 0; return b }},
		{"no FAT", func(b []byte) []byte { b[22], b[23] = 0, 0; return b }},
		{"odd sector size", func(b []byte) []byte { b[11], b[12] = 0x00, 0x03; return b }},
		{"larger than the partition", func(b []byte) []byte { return b[:len(b)/2] }},
		{"too few clusters for FAT16", func(b []byte) []byte { b[13] = 128; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, err := fatUsed(tc.edit(bytes.Clone(good))); err == nil {
				t.Errorf("fatUsed = %d, want an error", n)
			}
		})
	}
}
