package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gate/config"
	"gate/internal/gomodule"
	"gate/internal/initramfs"
)

// entry is one thing to put into a file system.
type entry struct {
	Path string      // absolute, inside the file system
	Mode fs.FileMode // permission bits (and fs.ModeDir / fs.ModeSymlink)
	Data []byte      // file content
	Src  string      // or: a host file to copy
	Link string      // symlink target
}

// tree is a file system's content, kept sorted by path.
type tree struct{ entries map[string]entry }

func newTree() *tree { return &tree{entries: map[string]entry{}} }

func (t *tree) dir(p string, mode fs.FileMode) {
	for d := p; d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok || d == p {
			m := fs.FileMode(0o755)
			if d == p {
				m = mode
			}
			t.entries[d] = entry{Path: d, Mode: fs.ModeDir | m}
		}
	}
}

func (t *tree) file(p string, mode fs.FileMode, data []byte) {
	t.parents(p)
	t.entries[p] = entry{Path: p, Mode: mode, Data: data}
}

func (t *tree) copy(p string, mode fs.FileMode, src string) {
	t.parents(p)
	t.entries[p] = entry{Path: p, Mode: mode, Src: src}
}

func (t *tree) symlink(p, target string) {
	t.parents(p)
	t.entries[p] = entry{Path: p, Mode: fs.ModeSymlink | 0o777, Link: target}
}

func (t *tree) parents(p string) {
	if d := path.Dir(p); d != "/" {
		if _, ok := t.entries[d]; !ok {
			t.dir(d, 0o755)
		}
	}
}

// copyDir adds every regular file below the host directory src at p,
// but for the directories skip says to leave out (by their slash path
// relative to src).
func (t *tree) copyDir(p, src string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, host)
		if d.IsDir() && skip != nil && skip(filepath.ToSlash(rel)) {
			return filepath.SkipDir
		}
		dst := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			t.dir(dst, 0o755)
		case d.Type().IsRegular():
			t.copy(dst, 0o644, host)
		}
		return nil
	})
}

// sorted returns the entries in path order (parents before children).
func (t *tree) sorted() []entry {
	out := make([]entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (e entry) content() ([]byte, error) {
	if e.Src != "" {
		b, err := os.ReadFile(e.Src)
		if err != nil {
			return nil, fmt.Errorf("reading %s for %s: %w", e.Src, e.Path, err)
		}
		return b, nil
	}
	return e.Data, nil
}

// Paths in the root file system that other parts of gate rely on.
const (
	SiteFilePath = "/etc/gate/site.yaml"
	AssetsDir    = "/usr/share/gate" // bootstrapd's -assets
)

// rootTree is the read-only root: the programs, the site file, gokrazy's
// configuration files and the kernel's modules. Never a secret.
func rootTree(o Options, bins, links map[string]string, kernel gomodule.Module, root string) (*tree, error) {
	c := o.Config
	t := newTree()
	for _, d := range []string{"/bin", "/dev", "/etc", "/proc", "/sys", "/tmp", "/perm", "/lib", "/run", "/mnt", "/gokrazy", "/user"} {
		t.dir(d, 0o755)
	}
	// Relative links, with their targets present in the image: /tmp and
	// /perm are mounted over them at boot. (go-diskfs's squashfs writer
	// follows links when it reads extended attributes, so a dangling or
	// absolute link would be resolved on the build machine.)
	t.symlink("/var", "perm/var")
	t.dir("/perm/var", 0o755)
	t.symlink("/etc/resolv.conf", "../tmp/resolv.conf")
	t.file("/tmp/resolv.conf", 0o644, nil)
	t.file("/etc/hostname", 0o644, []byte(c.Gate.Hostname))
	t.file("/etc/hosts", 0o644, []byte(fmt.Sprintf("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 %s\n", c.Gate.Hostname)))
	t.file("/etc/http-port.txt", 0o644, []byte(fmt.Sprint(c.Gate.HTTPPort)))
	t.file(SiteFilePath, 0o644, o.SiteYAML) // without inline secrets: see Build

	// gokrazy runs without any password unless /etc/gokr-pw.txt exists;
	// it reads /perm/gokr-pw.txt first. The root's copy is therefore a
	// value derived from the password, never the password itself: it only
	// counts if /perm cannot be mounted, and then nobody knows it.
	pw, err := c.ReadSecret(c.Gate.Password)
	if err != nil {
		return nil, fmt.Errorf("gate.password: %w (run gate secrets init)", err)
	}
	fallback := sha256.Sum256(append([]byte("gate fallback password\x00"), pw...))
	t.file("/etc/gokr-pw.txt", 0o400, []byte(hex.EncodeToString(fallback[:])))

	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		t.copy("/etc/ssl/ca-bundle.pem", 0o644, "/etc/ssl/certs/ca-certificates.crt")
	}
	if mods := filepath.Join(kernel.Dir, "lib", "modules"); dirExists(mods) {
		if err := t.copyDir("/lib/modules", mods, unusedModules); err != nil {
			return nil, err
		}
	}
	for p, bin := range bins {
		t.copy(p, 0o755, bin)
	}
	for p, target := range links {
		// Relative, and to a file of the root (see /var above).
		rel, err := filepath.Rel(path.Dir(p), target)
		if err != nil {
			return nil, err
		}
		t.symlink(p, rel)
	}
	assets, err := bootAssets(o)
	if err != nil {
		return nil, err
	}
	for p, src := range assets {
		t.copy(p, 0o644, src)
	}
	if o.Config.Bootstrap != nil {
		// The re-imaging initramfs (issue 6), booted by bootstrapd's iPXE script.
		kernel, initrd, err := initramfs.Assets(context.Background(), o.SourceDir)
		if err != nil {
			return nil, fmt.Errorf("imager assets: %w", err)
		}
		t.copy(path.Join(AssetsDir, "imager", "vmlinuz"), 0o644, kernel)
		t.file(path.Join(AssetsDir, "imager", "initramfs.gz"), 0o644, initrd)
	}
	for p, data := range o.ExtraRootFiles {
		t.file(p, 0o644, data)
	}
	return t, nil
}

// unusedModules are the kernel's module directories the gate has no use
// for: TV tuners and cameras, Bluetooth, Xen. Leaving them out keeps the
// root small (they are 6 MB of the kernel's 7.6).
func unusedModules(rel string) bool {
	// rel is "<version>/kernel/<dir>/..."
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) < 3 || parts[1] != "kernel" {
		return false
	}
	switch parts[2] {
	case "drivers/media", "drivers/bluetooth", "net/bluetooth", "drivers/xen", "sound":
		return true
	}
	return false
}

// bootAssets lists the host files bootstrapd serves, by their root path
// under AssetsDir: Debian's unmodified iPXE binaries (taken from
// bootstrap.ipxe_dir at build time). The re-imaging engineer adds the
// imager's kernel and initramfs here.
func bootAssets(o Options) (map[string]string, error) {
	b := o.Config.Bootstrap
	if b == nil {
		return nil, nil
	}
	out := map[string]string{}
	var missing []string
	for _, name := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		src := filepath.Join(b.IPXEDir, name)
		if _, err := os.Stat(src); err != nil {
			missing = append(missing, src)
			continue
		}
		out[path.Join(AssetsDir, "ipxe", name)] = src
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("bootstrap: iPXE binaries missing: %s (install Debian's ipxe package: apt-get install ipxe; or set bootstrap.ipxe_dir)", strings.Join(missing, ", "))
	}
	return out, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// bootTree is the FAT boot partition.
func bootTree(o Options, kernel, firmware gomodule.Module, partuuid string) (*tree, error) {
	t := newTree()
	cmdline := "console=tty1 console=serial0,115200 root=PARTUUID=" + partuuid + " init=/gokrazy/init rootwait panic=10 oops=panic"
	if o.Arch == "amd64" {
		cmdline = "console=ttyS0,115200 root=PARTUUID=" + partuuid + " init=/gokrazy/init rootwait panic=10 oops=panic"
	}
	// Padded so that gokrazy's /update/switch can rewrite root= in place.
	t.file("/cmdline.txt", 0o644, []byte(fmt.Sprintf("%-1023s", cmdline)+"\n"))
	t.copy("/vmlinuz", 0o644, filepath.Join(kernel.Dir, "vmlinuz"))
	if o.Arch == "amd64" {
		return t, nil
	}
	m, ok := piModels[o.Config.Gate.Model]
	if !ok {
		return nil, fmt.Errorf("gate.model %q is not a Raspberry Pi (rpi3, rpi4 or rpi5 for an arm64 image)", o.Config.Gate.Model)
	}
	t.file("/config.txt", 0o644, []byte("# gate: Raspberry Pi boot configuration ("+o.Config.Gate.Model+")\n"+m.config+"enable_uart=1\nkernel=vmlinuz\n"))
	ents, err := os.ReadDir(kernel.Dir)
	if err != nil {
		return nil, err
	}
	dtbs := 0
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".dtb") && slices.ContainsFunc(m.dtbs, func(p string) bool { return strings.HasPrefix(n, p) }) {
			t.copy("/"+n, 0o644, filepath.Join(kernel.Dir, n))
			dtbs++
		}
	}
	if dtbs == 0 {
		return nil, fmt.Errorf("gate.model %s: %s %s has no device tree %s*.dtb", o.Config.Gate.Model, kernel.Path, kernel.Version, m.dtbs[0])
	}
	if err := t.copyDir("/overlays", filepath.Join(kernel.Dir, "overlays"), nil); err != nil {
		return nil, fmt.Errorf("kernel overlays: %w", err)
	}
	for _, n := range m.firmware {
		src := filepath.Join(firmware.Dir, n)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("gate.model %s needs %s from %s %s: %w", o.Config.Gate.Model, n, firmware.Path, firmware.Version, err)
		}
		t.copy("/"+n, 0o644, src)
	}
	return t, nil
}

// piModels says, per gate.model, what the Pi's boot partition needs: the
// device trees of that board family (from kernel.rpi, whose one kernel
// serves the Pi 3, 4 and 5), the boot firmware (the Pi 3 reads
// bootcode.bin, start.elf and fixup.dat from the card; the Pi 4 start4.elf
// and fixup4.dat; the Pi 5 boots from its EEPROM and needs none), and the
// lines of config.txt before the common ones.
var piModels = map[string]struct {
	dtbs     []string // file name prefixes
	firmware []string
	config   string
}{
	"rpi3": {[]string{"bcm2710-", "bcm2837-"}, []string{"bootcode.bin", "start.elf", "fixup.dat"}, "arm_control=0x200\n"},
	"rpi4": {[]string{"bcm2711-"}, []string{"start4.elf", "fixup4.dat"}, "arm_control=0x200\n"},
	"rpi5": {[]string{"bcm2712"}, nil, ""},
}

// Paths on /perm.
const (
	PermSecrets = "/gate/secrets"
)

// permTree is /perm: the site's secrets (0600 in a 0700 directory) and
// the inline ones moved out of the site file (see inlineToFiles), the
// daemons' state directories, and gokrazy's password file.
func permTree(c *config.Config, inlined map[string][]byte) (*tree, error) {
	t := newTree()
	t.dir("/gate", 0o700)
	t.dir(PermSecrets, 0o700)
	for _, d := range []string{"vpn", "dyndns", "upsd", "bootstrapd", "bastion", "statusd"} {
		t.dir("/gate/"+d, 0o700)
	}
	t.dir("/var", 0o755)
	var missing []string
	for _, r := range c.SecretRefs() {
		if r.Scheme != "file" {
			continue // env: secrets are not available on the gate; check warns
		}
		src := filepath.Join(c.SecretsDir, r.Name)
		if _, err := os.Stat(src); err != nil {
			missing = append(missing, r.Path+" ("+src+")")
			continue
		}
		t.copy(path.Join(PermSecrets, r.Name), 0o600, src)
		if _, err := os.Stat(src + ".pub"); err == nil {
			t.copy(path.Join(PermSecrets, r.Name+".pub"), 0o644, src+".pub")
		}
	}
	for name, v := range inlined {
		t.file(path.Join(PermSecrets, name), 0o600, v)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("secrets missing: %s (run gate secrets init, or provide them)", strings.Join(missing, ", "))
	}
	pw, err := c.ReadSecret(c.Gate.Password)
	if err != nil {
		return nil, err
	}
	t.file("/gokr-pw.txt", 0o600, pw)
	return t, nil
}
