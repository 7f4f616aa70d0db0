package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mountinfo = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 8:17 / /media/usb rw,relatime shared:2 - vfat /dev/sdb1 rw
31 22 0:25 / /proc rw - proc proc rw
`

func TestParseMountinfo(t *testing.T) {
	ms, err := ParseMountinfo(strings.NewReader(mountinfo + "garbage line\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{"254:0", "/", "/dev/vda"}, {"8:17", "/media/usb", "/dev/sdb1"}, {"0:25", "/proc", "proc"}}
	if len(ms) != len(want) {
		t.Fatalf("got %+v", ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, ms[i], want[i])
		}
	}
}

func TestFlashTargetFiles(t *testing.T) {
	dir := t.TempDir()
	if d, err := FlashTarget(filepath.Join(dir, "new.img"), nil, "/sys/class/block"); err != nil || !strings.HasPrefix(d, "new file") {
		t.Errorf("new file: %q, %v", d, err)
	}
	old := filepath.Join(dir, "old.img")
	os.WriteFile(old, []byte("x"), 0o644)
	if d, err := FlashTarget(old, nil, "/sys/class/block"); err != nil || !strings.Contains(d, "overwritten") {
		t.Errorf("existing file: %q, %v", d, err)
	}
	if _, err := FlashTarget("/dev/null", nil, "/sys/class/block"); err == nil {
		t.Error("a character device was accepted")
	}
}

// TestFlashTargetRefusesRoot: the disk holding / (found here through
// /proc/self/mountinfo and /sys/class/block, as gate flash does) is refused.
func TestFlashTargetRefusesRoot(t *testing.T) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skip("no /proc/self/mountinfo")
	}
	ms, _ := ParseMountinfo(f)
	f.Close()
	for _, m := range ms {
		if m.MountPoint != "/" || !strings.HasPrefix(m.Source, "/dev/") {
			continue
		}
		if _, err := os.Stat(m.Source); err != nil {
			t.Skipf("root device %s not visible here", m.Source)
		}
		if _, err := FlashTarget(m.Source, ms, "/sys/class/block"); err == nil {
			t.Fatalf("flashing %s, which holds /, was accepted", m.Source)
		}
		return
	}
	t.Skip("/ is not on a block device here")
}

func TestFlashWritesAndVerifies(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "gate.img")
	data := bytes.Repeat([]byte("gate image "), 500000)
	os.WriteFile(img, data, 0o644)
	out := filepath.Join(dir, "card.img")
	os.WriteFile(out, bytes.Repeat([]byte{0xff}, 10<<20), 0o644) // a larger, used "card"
	var progress bytes.Buffer
	sum, err := Flash(img, out, &progress)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) {
		t.Errorf("sum %s", sum)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Error("the target does not hold the image")
	}
	if !strings.Contains(progress.String(), "100%") || !strings.Contains(progress.String(), "verifying") {
		t.Errorf("progress: %q", progress.String())
	}
}
