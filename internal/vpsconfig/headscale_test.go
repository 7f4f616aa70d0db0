package vpsconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gate/config"
)

// standardize turns the HuJSON into JSON: comments and trailing commas out.
func standardize(s string) string {
	s = regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(s, "")
	return regexp.MustCompile(`,(\s*[}\]])`).ReplaceAllString(s, "$1")
}

func TestHeadscale(t *testing.T) {
	parse := func(tailnet string) *config.Config {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "tailnet-authkey"), []byte("k\n"), 0o600)
		c, err := config.Parse("site.yaml", []byte(siteA+"ups: {source: usb, users: [{name: ceph-1, password: \"file:nut-ceph-1\"}]}\ntailnet:\n"+tailnet), dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	hs := parse("  control_url: https://hs.example.org\n  tags: [\"tag:gate\"]\n  services: [bastion, nut, metrics]\n  advertise_lan: true\n")
	text, ok, err := Headscale([]*config.Config{hs})
	if err != nil || !ok {
		t.Fatalf("Headscale: %v %v", ok, err)
	}
	var p struct {
		TagOwners     map[string][]string
		Raw           []map[string]any `json:"acls"`
		AutoApprovers struct{ Routes map[string][]string }
	}
	if err := json.Unmarshal([]byte(standardize(text)), &p); err != nil {
		t.Fatalf("not HuJSON: %v\n%s", err, text)
	}
	if got := p.TagOwners["tag:gate"]; len(got) != 1 || got[0] != "group:gate-admins" {
		t.Errorf("tagOwners %v", p.TagOwners)
	}
	var dsts []string
	for _, a := range p.Raw {
		for _, d := range a["dst"].([]any) {
			dsts = append(dsts, d.(string))
		}
	}
	if strings.Join(dsts, " ") != "tag:gate:22,3493,9101-9108 192.168.1.0/24:*" {
		t.Errorf("acl destinations %q", dsts)
	}
	if r := p.AutoApprovers.Routes["192.168.1.0/24"]; len(r) != 1 || r[0] != "tag:gate" {
		t.Errorf("autoApprovers %v", p.AutoApprovers)
	}
	if !strings.Contains(text, "preauthkeys create --user USER --tags tag:gate") {
		t.Errorf("no auth key hint:\n%s", text)
	}

	// Only the bastion, no route: one rule, no autoApprovers.
	text, _, _ = Headscale([]*config.Config{parse("  control_url: https://hs.example.org\n  tags: [\"tag:gate\"]\n")})
	if !strings.Contains(text, `"dst": ["tag:gate:22"]`) || strings.Contains(text, "autoApprovers") {
		t.Errorf("bastion only:\n%s", text)
	}
	// Tailscale's control server: nothing to print.
	if _, ok, err := Headscale([]*config.Config{parse("  tags: [\"tag:gate\"]\n")}); ok || err != nil {
		t.Errorf("Tailscale's control server: ok %v err %v", ok, err)
	}
	// A Headscale without tags: the policy could not name the gate.
	if _, _, err := Headscale([]*config.Config{parse("  control_url: https://hs.example.org\n")}); err == nil || !strings.Contains(err.Error(), "tailnet.tags") {
		t.Errorf("no tags: %v", err)
	}
}
