package image

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gate/config"
)

// Inline secrets never reach the root: the root's site file refers to
// files on /perm (0600) that hold them, and reads back the same values.
func TestInlineSecretsOutOfRoot(t *testing.T) {
	yaml := bytes.Replace(config.Example(), []byte("password: file:nut-admin"), []byte(`password: "inline:adm1n pw\"x"`), 1)
	yaml = bytes.Replace(yaml, []byte("password: file:gokrazy-password"), []byte("password: inline:gokr4zy"), 1)
	dir := t.TempDir()
	c, err := config.Parse("site.yaml", yaml, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InitSecrets(); err != nil {
		t.Fatal(err)
	}
	root, files, err := inlineToFiles(c, yaml)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"adm1n", "gokr4zy", "inline:"} {
		if strings.Contains(string(root), v) {
			t.Errorf("the root's site file holds %q:\n%s", v, root)
		}
	}
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	// The gate reads the same values from /perm.
	gateSecrets := t.TempDir()
	for n, v := range files {
		os.WriteFile(filepath.Join(gateSecrets, n), v, 0o600)
	}
	g, err := config.Parse("site.yaml", root, gateSecrets)
	if err != nil {
		t.Fatalf("the root's site file: %v\n%s", err, root)
	}
	for _, u := range g.UPS.Users {
		if u.Name == "admin" {
			if v, err := g.ReadSecret(u.Password); err != nil || string(v) != `adm1n pw"x` {
				t.Errorf("admin's password on the gate: %q %v (ref %s)", v, err, u.Password)
			}
		}
	}
	if v, err := g.ReadSecret(g.Gate.Password); err != nil || string(v) != "gokr4zy" {
		t.Errorf("gokrazy password on the gate: %q %v", v, err)
	}
	tr, err := permTree(c, files)
	if err != nil {
		t.Fatal(err)
	}
	for n := range files {
		if e, ok := tr.entries[PermSecrets+"/"+n]; !ok || e.Mode != 0o600 {
			t.Errorf("/perm%s/%s: %+v", PermSecrets, n, e)
		}
	}
	// Without inline secrets the site file is the same bytes.
	plain, _, err := inlineToFiles(example(t), config.Example())
	if err != nil || !bytes.Equal(plain, config.Example()) {
		t.Errorf("a site file without inline secrets was rewritten: %v", err)
	}
}

// The image file is the owner's alone, whatever the umask.
func TestImageFileMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	c := example(t)
	out := filepath.Join(t.TempDir(), "gate.img")
	boot, root, perm := newTree(), newTree(), newTree()
	boot.file("/cmdline.txt", 0o644, []byte("x"))
	root.dir("/etc", 0o755)
	perm.dir("/gate", 0o700)
	o := Options{Config: c, Output: out, Size: 1300 << 20}
	if err := writeDisk(o, 1, boot, root, perm, &Result{}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("image mode %v, want 0600", st.Mode().Perm())
	}
}
