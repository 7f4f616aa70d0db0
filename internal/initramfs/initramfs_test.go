package initramfs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWrite checks the archive with Debian's cpio (an independent reader)
// and that the same input gives the same bytes.
func TestWrite(t *testing.T) {
	init := []byte("#!/bin/sh\necho hi\n")
	var a, b bytes.Buffer
	if err := Write(&a, init); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, init); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds of the same initramfs differ")
	}
	for _, p := range []string{"cpio", "gzip"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing (make deps)", p)
			}
			t.Skipf("%s missing (make deps)", p)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", "gzip -dc | cpio -idmv --quiet")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(a.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "init"))
	if err != nil || !bytes.Equal(got, init) {
		t.Fatalf("init = %q, %v", got, err)
	}
	st, _ := os.Stat(filepath.Join(dir, "init"))
	if st.Mode().Perm() != 0o755 {
		t.Errorf("init mode %v", st.Mode())
	}
	for _, d := range []string{"dev", "proc", "sys", "mnt", "tmp"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if !strings.Contains(string(out), "init") {
		t.Errorf("cpio listing lacks init: %s", out)
	}
}

// TestBuild compiles the real imager twice: the initramfs must be
// byte-identical, and /init a static amd64 ELF.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the imager twice")
	}
	ctx := context.Background()
	a, err := Build(ctx, "../..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(ctx, "../..")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("initramfs not reproducible")
	}
	init, err := BuildImager(ctx, "../..")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(init, []byte("\x7fELF\x02")) || init[18] != 62 {
		t.Fatalf("/init is not an amd64 ELF")
	}
	if k, err := KernelPath(ctx, "../.."); err != nil {
		t.Fatal(err)
	} else if st, err := os.Stat(k); err != nil || st.Size() < 1<<20 {
		t.Fatalf("kernel %s: %v", k, err)
	}
}
