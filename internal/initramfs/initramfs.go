// Package initramfs builds the imager's initramfs: a gzip-compressed newc
// cpio archive whose /init is cmd/imager built for amd64 (CGO_ENABLED=0),
// booted with github.com/gokrazy/kernel.amd64's vmlinuz. The archive is
// deterministic: same program bytes, same archive bytes.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"gate/internal/gomodule"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
)

// KernelModule is the module that carries the imager's kernel.
const KernelModule = "github.com/gokrazy/kernel.amd64"

// Write writes the initramfs with init as /init to w.
func Write(w io.Writer, init []byte) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	// gzip header: no name, no mtime (deterministic).
	zw.ModTime = time.Time{}
	cw := cpio.NewWriter(zw)
	ino := int64(1)
	add := func(h *cpio.Header, data []byte) error {
		h.Inode = ino
		ino++
		if err := cw.WriteHeader(h); err != nil {
			return fmt.Errorf("initramfs: %s: %w", h.Name, err)
		}
		if len(data) > 0 {
			if _, err := cw.Write(data); err != nil {
				return fmt.Errorf("initramfs: %s: %w", h.Name, err)
			}
		}
		return nil
	}
	for _, d := range []string{"dev", "etc", "mnt", "proc", "sys", "tmp"} {
		if err := add(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755, Links: 2}, nil); err != nil {
			return err
		}
	}
	if err := add(&cpio.Header{Name: "init", Mode: cpio.TypeReg | 0o755, Links: 1, Size: int64(len(init))}, init); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return zw.Close()
}

// BuildImager compiles gate/cmd/imager for amd64 from the module at
// moduleDir (the gate checkout) and returns the binary.
func BuildImager(ctx context.Context, moduleDir string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "imager-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "init")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "netgo,osusergo",
		"-ldflags", "-s -w -buildid=", "-o", out, "gate/cmd/imager")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build gate/cmd/imager: %v: %s", err, strings.TrimSpace(string(msg)))
	}
	return os.ReadFile(out)
}

// Build compiles the imager and returns the initramfs.gz bytes.
func Build(ctx context.Context, moduleDir string) ([]byte, error) {
	init, err := BuildImager(ctx, moduleDir)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := Write(&b, init); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// KernelPath returns the path of kernel.amd64's vmlinuz in the module
// cache, as the gate module at moduleDir requires it.
func KernelPath(ctx context.Context, moduleDir string) (string, error) {
	m, err := gomodule.Download(ctx, moduleDir, KernelModule)
	if err != nil {
		return "", fmt.Errorf("the imager's kernel: %w", err)
	}
	p := filepath.Join(m.Dir, "vmlinuz")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kernel of %s %s: %w", KernelModule, m.Version, err)
	}
	return p, nil
}

// Assets returns what bootstrapd serves under assets/imager/: the path of
// kernel.amd64's vmlinuz and the initramfs.gz bytes, both for the gate
// module that contains sourceDir.
func Assets(ctx context.Context, sourceDir string) (kernel string, initrd []byte, err error) {
	kernel, err = KernelPath(ctx, sourceDir)
	if err != nil {
		return "", nil, err
	}
	initrd, err = Build(ctx, sourceDir)
	if err != nil {
		return "", nil, err
	}
	return kernel, initrd, nil
}
