package resolvconf

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// gokrazy's layout: etc/resolv.conf → tmp/resolv.conf → a file that
// refuses writes (/proc/net/pnp on the gate; here /proc/version, which
// refuses them too). Writing through the links fails; Write must replace
// tmp/resolv.conf instead.
func TestWriteReplacesLinkTarget(t *testing.T) {
	servers := []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fd00::1")}
	want := "nameserver 192.168.1.1\nnameserver fd00::1\n"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (path, check string)
	}{
		{"gokrazy links to an unwritable file", func(t *testing.T, dir string) (string, string) {
			os.Mkdir(filepath.Join(dir, "etc"), 0o755)
			os.Mkdir(filepath.Join(dir, "tmp"), 0o755)
			must(t, os.Symlink("/proc/version", filepath.Join(dir, "tmp/resolv.conf")))
			must(t, os.Symlink("../tmp/resolv.conf", filepath.Join(dir, "etc/resolv.conf")))
			return filepath.Join(dir, "etc/resolv.conf"), filepath.Join(dir, "tmp/resolv.conf")
		}},
		{"absolute link to a missing file", func(t *testing.T, dir string) (string, string) {
			must(t, os.Symlink(filepath.Join(dir, "resolv.real"), filepath.Join(dir, "resolv.conf")))
			return filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "resolv.real")
		}},
		{"plain file", func(t *testing.T, dir string) (string, string) {
			p := filepath.Join(dir, "resolv.conf")
			must(t, os.WriteFile(p, []byte("nameserver 10.0.0.1\n"), 0o644))
			return p, p
		}},
		{"no file yet", func(t *testing.T, dir string) (string, string) {
			p := filepath.Join(dir, "resolv.conf")
			return p, p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, check := tc.setup(t, t.TempDir())
			if err := Write(path, servers); err != nil {
				t.Fatalf("Write(%s): %v", path, err)
			}
			for _, p := range []string{path, check} {
				got, err := os.ReadFile(p)
				if err != nil || string(got) != want {
					t.Errorf("%s = %q, %v; want %q", p, got, err, want)
				}
			}
			if fi, err := os.Lstat(check); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s is not a regular file after Write: %v %v", check, fi.Mode(), err)
			}
		})
	}
}

func TestWriteFailsInAMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "resolv.conf")
	if err := Write(p, nil); err == nil {
		t.Fatalf("Write(%s) succeeded", p)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
