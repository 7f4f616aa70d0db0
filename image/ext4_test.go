package image

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
)

// buildPerm writes a small ext4 with a few files at 1 MiB into a new file.
func buildPerm(t *testing.T, name, seed string, features ...ext4.FeatureOpt) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	d, err := diskfs.Create(p, 80<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTree()
	tr.dir("/gate", 0o755)
	tr.dir("/gate/secrets", 0o700)
	tr.file("/gate/secrets/wireguard.key", 0o600, []byte("not a real key\n"))
	tr.dir("/var/lib", 0o755)
	const start, size = 1 << 20, 64 << 20
	if err := writeExt4(d, tr, start, size, seed, features...); err != nil {
		t.Fatal(err)
	}
	d.Close()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := normalizeExt4(f, f, start, fixedTime); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	csum := binary.LittleEndian.Uint32(b[start+sbOffset+sbROCompat:])&roCompatMetaCsm != 0
	if want := len(features) > 0; csum != want {
		t.Errorf("metadata_csum %v, want %v", csum, want)
	}
	if e2fsck, err := exec.LookPath("e2fsck"); err == nil {
		part := filepath.Join(t.TempDir(), name+".ext4")
		os.WriteFile(part, b[start:start+size], 0o644)
		// -y on the copy: -n keeps quiet about a missing lost+found,
		// which e2fsck -y (and the journey's check of /perm) creates.
		if out, err := exec.Command(e2fsck, "-fy", part).CombinedOutput(); err != nil || strings.Contains(string(out), "? yes") {
			t.Errorf("e2fsck -fy after normalizing: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Errorf("e2fsck missing on CI: %v", err)
	}
	return b
}

func TestExt4Reproducible(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features []ext4.FeatureOpt
	}{
		{"image's features", nil},
		{"metadata_csum", []ext4.FeatureOpt{ext4.WithFeatureMetadataChecksums(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := buildPerm(t, "a.img", "gate", tc.features...)
			time.Sleep(1100 * time.Millisecond) // another wall-clock second
			b := buildPerm(t, "b.img", "gate", tc.features...)
			sameBytes(t, a, b)
			if c := buildPerm(t, "c.img", "other", tc.features...); bytes.Equal(a, c) {
				t.Errorf("another host name gives the same file system (same UUID)")
			}
		})
	}
}

func sameBytes(t *testing.T, a, b []byte) {
	t.Helper()
	if !bytes.Equal(a, b) {
		n := 0
		for i := range a {
			if a[i] != b[i] {
				if n < 20 {
					t.Errorf("byte %#x differs: %#x vs %#x", i, a[i], b[i])
				}
				n++
			}
		}
		t.Errorf("%d bytes differ between two builds", n)
	}
}

func TestNormalizeExt4RefusesGarbage(t *testing.T) {
	b := make([]byte, 8192)
	r := bytes.NewReader(b)
	if err := normalizeExt4(r, nil, 0, fixedTime); err == nil {
		t.Errorf("no error on a zeroed file system")
	}
}
