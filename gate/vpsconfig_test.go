package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gate/config"
)

func TestVPSConfig(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(site, config.Example(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Before the secrets exist: a clear failure naming the missing key.
	code, _, errs := runGate(t, "", "vps-config", "-c", site)
	if code != exitFailed || !strings.Contains(errs, "vpn.private_key") || !strings.Contains(errs, "gate secrets init") {
		t.Fatalf("without secrets: exit %d, stderr %s", code, errs)
	}
	if code, out, errs := runGate(t, "", "secrets", "init", "-c", site); code != exitOK {
		t.Fatalf("secrets init: exit %d\n%s\n%s", code, out, errs)
	}
	priv, err := os.ReadFile(filepath.Join(dir, "secrets", "wireguard.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := config.WireGuardPublicKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := os.ReadFile(filepath.Join(dir, "secrets", "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	keyField := strings.Fields(string(hostKey))[1]

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"printed", []string{"-c", site}, exitOK, []string{
			"### /etc/wireguard/wg0.conf", "PublicKey = " + pub, "AllowedIPs = 10.99.0.2/32",
			"### /etc/nftables.d/gate-hub.nft", "tcp dport 2222 dnat ip to 10.99.0.2:22",
			"net.ipv4.ip_forward = 1", "[203.0.113.10]:2222 ssh-ed25519 " + keyField,
			"ProxyJump admin@vps1.example.net:2222",
		}},
		{"named hub and interface", []string{"-c", site, "-i", "wg7", "vps-1"}, exitOK, []string{"### /etc/wireguard/wg7.conf", "wg set %i private-key /etc/wireguard/%i.key"}},
		{"unknown hub", []string{"-c", site, "vps-9"}, exitFailed, []string{`no hub "vps-9"`}},
		{"the same site twice", []string{"-c", site, "-c", site}, exitFailed, []string{"overlaps", "same WireGuard key"}},
		{"two hubs named", []string{"-c", site, "a", "b"}, exitUsage, []string{"at most one HUB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runGate(t, "", append([]string{"vps-config"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tt.code, out, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\nstdout %s\nstderr %s", w, out, errs)
				}
			}
		})
	}

	// -o writes the files.
	outDir := filepath.Join(dir, "hub")
	if code, out, errs := runGate(t, "", "vps-config", "-c", site, "-o", outDir); code != exitOK {
		t.Fatalf("-o: exit %d\n%s\n%s", code, out, errs)
	}
	for _, f := range []string{"wg0.conf", "gate-hub.nft", "99-gate-hub.conf", "known_hosts", "ssh_config"} {
		if b, err := os.ReadFile(filepath.Join(outDir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %v (%d bytes)", f, err, len(b))
		}
	}
}
