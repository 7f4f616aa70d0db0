package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The embedded example has one secrets directory: the key gate secrets
// init creates is the one the image takes (readSite with create, as gate
// image and gate update call it) and the one gate vps-config reads.
func TestExampleHasOneSecretsDirectory(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := runGate(t, dir, "secrets", "init"); code != exitOK {
		t.Fatalf("secrets init: exit %d\n%s\n%s", code, out, errs)
	}
	key, err := os.ReadFile(filepath.Join(dir, "secrets", "wireguard.key"))
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(wd)
	var errb bytes.Buffer
	c, _, err := readSite(&env{stderr: &errb, stdout: &errb, stdin: strings.NewReader("")}, defaultSite, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadSecret(c.VPN.PrivateKey)
	if err != nil || !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(key)) {
		t.Errorf("the image's WireGuard key is %q (%v), gate secrets init wrote %q", got, err, key)
	}
	if _, err := os.Stat(filepath.Join(dir, "build", "secrets")); !os.IsNotExist(err) {
		t.Errorf("a second secrets directory build/secrets exists: %v", err)
	}
	// vps-config prints the public key of that same private key.
	code, out, errs := runGate(t, dir, "vps-config")
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	if code != exitOK || !strings.Contains(out, "PublicKey = "+priv.PublicKey().String()) {
		t.Fatalf("vps-config: exit %d\n%s\n%s", code, out, errs)
	}
}
