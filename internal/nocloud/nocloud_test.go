package nocloud

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func facts() *Facts {
	return &Facts{Name: "ceph-1", Domain: "example.net", FQDN: "ceph-1.example.net", IP: "10.0.0.11", Prefix: 24,
		Gateway: "10.0.0.1", MACs: []string{"52:54:00:12:34:56"}, Role: "ceph", InstanceID: "ceph-1-20260101T000000",
		GateURL: "http://10.0.0.2:8080", GateIP: "10.0.0.2", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin"},
		NUTMonitor: "MONITOR ups@10.0.0.2 1 ceph-1 pw secondary"}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tmpl    Templates
		wantErr string
		check   []string // substrings of user-data
	}{
		{"defaults", Templates{}, "", []string{"hostname: ceph-1", "phone-home", "ssh-ed25519", "MONITOR ups@10.0.0.2", "- nut-client"}},
		// The secondary settings the ordered shutdown needs (README "UPS:
		// what the hosts need").
		{"upsmon settings", Templates{}, "", []string{"MINSUPPLIES 1\n", "SHUTDOWNCMD \"/sbin/shutdown -h +0\"\n", "POLLFREQ 1\n", "POLLFREQALERT 1\n", "DEADTIME 30\n", "FINALDELAY 0\n"}},
		{"role template", Templates{UserData: "#cloud-config\npackages: [ceph]\nruncmd:\n  - echo {{.Role}} {{.IP}}\nssh_authorized_keys: [\"ssh-rsa AAAA x\"]\n"}, "",
			[]string{"echo ceph 10.0.0.11", "ssh-rsa AAAA x", "ssh-ed25519", "post: all", "- ceph\n    - nut-client"}},
		{"network template", Templates{NetworkConfig: "version: 2\nethernets:\n  e:\n    match: {macaddress: \"{{index .MACs 0}}\"}\n    addresses: [{{.IP}}/{{.Prefix}}]\n"}, "", nil},
		{"missing key", Templates{UserData: "#cloud-config\nx: {{.Nope}}\n"}, "Nope", nil},
		{"not cloud-config", Templates{UserData: "#!/bin/sh\necho\n"}, "#cloud-config", nil},
		{"bad yaml", Templates{UserData: "#cloud-config\n: : :\n  - ["}, "not YAML", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Render(tc.tmpl, facts())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.check {
				if !strings.Contains(f.UserData, s) {
					t.Errorf("user-data lacks %q:\n%s", s, f.UserData)
				}
			}
			var md map[string]string
			if err := yaml.Unmarshal([]byte(f.MetaData), &md); err != nil || md["instance-id"] != "ceph-1-20260101T000000" || md["local-hostname"] != "ceph-1" {
				t.Fatalf("meta-data %q (%v)", f.MetaData, err)
			}
			schema(t, f.UserData)
		})
	}
}

// schema validates user-data with Debian's cloud-init.
func schema(t *testing.T, ud string) {
	if _, err := exec.LookPath("cloud-init"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cloud-init missing")
		}
		t.Log("cloud-init missing: schema not checked")
		return
	}
	p := filepath.Join(t.TempDir(), "user-data")
	os.WriteFile(p, []byte(ud), 0o644)
	out, err := exec.Command("cloud-init", "schema", "--config-file", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid") {
		t.Fatalf("cloud-init schema refused (%v):\n%s\n%s", err, out, ud)
	}
}

// TestGateKey: the gate's shutdown key goes to the shutdown user's
// authorized_keys (root's at once, another user's once it exists), with
// the forced command that allows the host's commands only.
func TestGateKey(t *testing.T) {
	const line = `restrict,command="/usr/local/sbin/gate-command" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl gate-shutdown`
	for _, tc := range []struct {
		user, path string
		deferred   bool
		cmds       []string
	}{
		{"root", "/root/.ssh/authorized_keys", false, []string{"ceph osd set noout", "ceph osd unset noout"}},
		{"", "/root/.ssh/authorized_keys", false, nil},
		{"ops", "/home/ops/.ssh/authorized_keys", true, []string{"poweroff"}},
	} {
		f := facts()
		f.GateKey, f.GateUser, f.GateCommands = line, tc.user, tc.cmds
		out, err := Render(Templates{}, f)
		if err != nil {
			t.Fatal(err)
		}
		schema(t, out.UserData)
		var doc struct {
			WriteFiles []struct {
				Path, Permissions, Content, Owner string
				Append, Defer                     bool
			} `yaml:"write_files"`
		}
		if err := yaml.Unmarshal([]byte(out.UserData), &doc); err != nil {
			t.Fatal(err)
		}
		var script, key bool
		for _, w := range doc.WriteFiles {
			switch w.Path {
			case "/usr/local/sbin/gate-command":
				script = w.Permissions == "0755"
				for _, c := range tc.cmds {
					if !strings.Contains(w.Content, "'"+c+"')") {
						t.Errorf("user %q: the forced command does not allow %q:\n%s", tc.user, c, w.Content)
					}
				}
			case tc.path:
				key = w.Append && w.Content == line+"\n" && w.Permissions == "0600" && w.Defer == tc.deferred
				if tc.deferred && w.Owner != tc.user+":"+tc.user {
					t.Errorf("user %q: owner %q", tc.user, w.Owner)
				}
			}
		}
		if !script || !key {
			t.Errorf("user %q: script %v, key %v in\n%s", tc.user, script, key, out.UserData)
		}
	}
	// No key, no files.
	out, err := Render(Templates{}, facts())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.UserData, "gate-command") || strings.Contains(out.UserData, ".ssh/authorized_keys") {
		t.Errorf("a key was installed without one:\n%s", out.UserData)
	}
}
