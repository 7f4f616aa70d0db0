package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gate/config"
)

// TestTailnetCheckAndVPSConfig: gate check explains the tailnet plan, and
// gate vps-config prints the Headscale policy for a site that names a
// Headscale (with no vpn section, only that).
func TestTailnetCheckAndVPSConfig(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	ex := string(config.Example())
	// The example without its vpn section, with a tailnet on a Headscale.
	i := strings.Index(ex, "\nvpn:")
	j := strings.Index(ex[i+1:], "\n\n")
	yaml := ex[:i+1] + ex[i+1+j+2:] + "\ntailnet:\n  control_url: https://hs.example.org\n  tags: [\"tag:gate\"]\n  services: [bastion, nut]\n  advertise_lan: true\n"
	if err := os.WriteFile(site, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runGate(t, "", "secrets", "init", "-c", site); code != exitOK {
		t.Fatalf("secrets init: exit %d\n%s\n%s", code, out, errs)
	}
	os.WriteFile(filepath.Join(dir, "secrets", "tailnet-authkey"), []byte("hskey\n"), 0o600)
	for _, f := range []string{"cloudflare-token", "nut-upstream"} { // the example's external secrets
		os.WriteFile(filepath.Join(dir, "secrets", f), []byte("x\n"), 0o600)
	}
	code, out, errs := runGate(t, "", "check", "-c", site)
	if code != exitOK {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"tailnet     node gate-1 on the Headscale at https://hs.example.org, tags tag:gate",
		"offers the bastion on port 22, NUT read-only (upsc) on port 3493; nothing else",
		"advertises 192.168.1.0/24 as a subnet route",
		"the only way in from outside (no vpn section)",
		"SSH jump host on port 22 of the tailnet for",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = runGate(t, "", "vps-config", "-c", site)
	if code != exitOK || !strings.Contains(out, "### /etc/headscale/acl.hujson") || !strings.Contains(out, `"dst": ["tag:gate:22,3493"]`) || strings.Contains(out, "wireguard") {
		t.Fatalf("vps-config: exit %d\n%s\n%s", code, out, errs)
	}
}
