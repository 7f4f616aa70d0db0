// Package resolvconf writes the resolver configuration on gokrazy, where
// /etc/resolv.conf (read-only root) is a link to /tmp/resolv.conf, and
// /tmp/resolv.conf starts as a link to /proc/net/pnp (the kernel's own
// ip= configuration), which refuses writes with EIO. Like gokrazy's DHCP
// client, Write replaces the link's target file with an atomic rename
// instead of writing through it.
package resolvconf

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"gate/internal/atomicfile"
)

// Write makes path (or, when path is a symbolic link, the file it names)
// list servers as nameservers, replacing whatever is there, link or file.
func Write(path string, servers []netip.Addr) error {
	target, err := writable(path)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s.WithZone(""))
	}
	if err := atomicfile.WriteFile(target, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("resolver configuration %s: %w", path, err)
	}
	return nil
}

// writable returns the file to replace for path: path itself, or the
// target of the link at path (one level: the target is itself replaced,
// link or not).
func writable(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return path, nil // a plain file, or none yet: written in place
	}
	dst, err := os.Readlink(path)
	if err != nil {
		return "", fmt.Errorf("resolver configuration %s: %w", path, err)
	}
	if !filepath.IsAbs(dst) {
		dst = filepath.Join(filepath.Dir(path), dst)
	}
	return dst, nil
}
