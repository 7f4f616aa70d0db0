package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const tailnetBastion = `bastion:
  users: [{name: admin, keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtQUDhmPpnEbaGEcbrkMTm0e+oVbeqIyQQQUdh2Ep11 a@b"], allow: ["*:22"]}]
`

func TestTailnetDefaults(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tailnet-authkey"), []byte("tskey-auth-x\n"), 0o600)
	// No vpn and no listen_lan: the tailnet alone is where the bastion listens.
	c, err := Parse("site.yaml", []byte(minimal+"gate: {hostname: gate-1}\n"+tailnetBastion+"tailnet: {}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	tn := c.Tailnet
	want := Tailnet{ControlURL: TailscaleControlURL, AuthKey: "file:tailnet-authkey", Hostname: "gate-1", Services: []string{"bastion"}}
	if !reflect.DeepEqual(*tn, want) {
		t.Errorf("defaults: %+v, want %+v", *tn, want)
	}
	if tn.Headscale() || !tn.Offers("bastion") || tn.Offers("nut") {
		t.Errorf("Headscale %v, offers bastion %v, nut %v", tn.Headscale(), tn.Offers("bastion"), tn.Offers("nut"))
	}
	c, err = Parse("site.yaml", []byte(minimal+tailnetBastion+"tailnet: {control_url: \"https://hs.example.org\"}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Tailnet.Headscale() {
		t.Error("a control URL other than Tailscale's is not taken for a Headscale")
	}
	var nilT *Tailnet
	if nilT.Offers("bastion") {
		t.Error("an absent tailnet offers the bastion")
	}
}

func TestTailnetProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"bastion nowhere", minimal + tailnetBastion + "tailnet: {auth_key: \"env:PATH\", services: [metrics]}\n", []string{
			"bastion: no vpn section, listen_lan is false and the tailnet does not offer it"}},
		{"services", minimal + "tailnet: {auth_key: \"env:PATH\", services: [bastion, nut, ssh, metrics, metrics]}\n", []string{
			"3:44: tailnet.services[0]: bastion offered but the site file has no bastion section",
			"3:53: tailnet.services[1]: nut offered but the site file has no ups section",
			"3:58: tailnet.services[2]: unknown service \"ssh\"",
			"3:72: tailnet.services[4]: \"metrics\" given twice",
		}},
		{"status without statusd", minimal + "tailnet: {auth_key: \"env:PATH\", services: [status]}\n", []string{"tailnet.services[0]: status offered but the site file has no status section"}},
		{"nothing offered", minimal + "tailnet: {auth_key: \"env:PATH\", services: []}\n", []string{"tailnet.services: empty and advertise_lan is false"}},
		{"url, tags, hostname", minimal + "tailnet: {auth_key: \"env:PATH\", control_url: \"hs.example.org\", hostname: Gate_1, tags: [gate, \"tag:ok\"], services: [metrics]}\n", []string{
			"tailnet.control_url: malformed URL \"hs.example.org\"",
			"tailnet.hostname: \"Gate_1\" is not a valid host name",
			"tailnet.tags[0]: \"gate\" is not a tag",
		}},
		{"auth key missing", minimal + "tailnet: {services: [metrics]}\n", []string{"tailnet.auth_key: ", "tailnet-authkey does not exist (write the value issued by the provider there)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("site.yaml", []byte(tc.yaml), t.TempDir())
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want Problems", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
			if strings.Contains(err.Error(), "tag:ok") {
				t.Errorf("a good tag refused:\n%s", err)
			}
		})
	}
}
