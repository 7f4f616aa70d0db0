package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gate/config"
)

// example loads the embedded example site with its secrets generated into
// a temporary directory.
func example(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Parse("example.yaml", config.Example(), t.TempDir())
	if err != nil {
		t.Fatalf("parsing the example: %v", err)
	}
	if _, err := c.InitSecrets(); err != nil {
		t.Fatalf("InitSecrets: %v", err)
	}
	return c
}

func TestDiskSignature(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"gate", "gate2"},
		{"", "gate"},
		{"site-a-gate", "site-b-gate"},
	} {
		if DiskSignature(tc.a) != DiskSignature(tc.a) {
			t.Errorf("DiskSignature(%q) is not stable", tc.a)
		}
		if DiskSignature(tc.a) == 0 || DiskSignature(tc.b) == 0 {
			t.Errorf("DiskSignature(%q or %q) is 0 (no PARTUUID then)", tc.a, tc.b)
		}
		if DiskSignature(tc.a) == DiskSignature(tc.b) {
			t.Errorf("DiskSignature(%q) == DiskSignature(%q)", tc.a, tc.b)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	c := example(t)
	for _, tc := range []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"no config", Options{Output: "x"}, "no site config"},
		{"bad arch", Options{Config: c, Arch: "riscv64", Output: "x"}, "unknown architecture"},
		{"too small", Options{Config: c, Output: "x", Size: 100 << 20}, "too small"},
		{"no output", Options{Config: c}, "no output"},
		{"defaults", Options{Config: c, Output: "x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.defaults()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("defaults: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("defaults: error %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "":
				if tc.o.Arch != "arm64" || tc.o.Size != DefaultSize || tc.o.SourceDir != "." {
					t.Errorf("defaults: arch %q size %d source %q", tc.o.Arch, tc.o.Size, tc.o.SourceDir)
				}
			}
		})
	}
}

func TestPrograms(t *testing.T) {
	paths := func(ps []program) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Path)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name   string
		modify func(c *config.Config)
		want   string
	}{
		{"example (static address, every section)", func(*config.Config) {},
			"/gokrazy/staticip /gokrazy/ntp /gokrazy/randomd /user/firewall /user/vpn /user/dyndns /user/upsd /user/bootstrapd /user/bastion"},
		{"dhcp, no sections", func(c *config.Config) {
			c.Gate.Address = "dhcp"
			c.VPN, c.DynDNS, c.UPS, c.Bootstrap, c.Bastion = nil, nil, nil, nil, nil
		}, "/gokrazy/dhcp /gokrazy/ntp /gokrazy/randomd /user/firewall"},
		{"firewall off", func(c *config.Config) {
			c.Gate.Address = "dhcp"
			c.VPN, c.DynDNS, c.UPS, c.Bootstrap, c.Bastion = nil, nil, nil, nil, nil
			c.Firewall = &config.Firewall{Off: true}
		}, "/gokrazy/dhcp /gokrazy/ntp /gokrazy/randomd"},
		{"only the UPS", func(c *config.Config) {
			c.VPN, c.DynDNS, c.Bootstrap, c.Bastion = nil, nil, nil, nil
		}, "/gokrazy/staticip /gokrazy/ntp /gokrazy/randomd /user/firewall /user/upsd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := example(t)
			tc.modify(c)
			ps := programs(c)
			if got := paths(ps); got != tc.want {
				t.Errorf("programs:\n got %s\nwant %s", got, tc.want)
			}
			for _, p := range ps {
				if p.Path == "/gokrazy/staticip" && !strings.Contains(strings.Join(p.Args, " "), "-address 192.168.1.2/24") {
					t.Errorf("staticip args %q lack the site's address", p.Args)
				}
				if p.Daemon != "" && (len(p.Args) == 0 || p.Args[0] != "-console") {
					t.Errorf("%s args %q: want -console (ready lines on the serial console)", p.Path, p.Args)
				}
			}
		})
	}
}

func TestTreeSortedParentsFirst(t *testing.T) {
	tr := newTree()
	tr.file("/b/c/d.txt", 0o644, []byte("d"))
	tr.symlink("/a/link", "/b/c/d.txt")
	tr.dir("/b/secret", 0o700)
	tr.file("/b/secret/x", 0o600, []byte("x"))
	var got []string
	for _, e := range tr.sorted() {
		got = append(got, e.Path+":"+e.Mode.String())
	}
	want := "/a:drwxr-xr-x /a/link:Lrwxrwxrwx /b:drwxr-xr-x /b/c:drwxr-xr-x /b/c/d.txt:-rw-r--r-- /b/secret:drwx------ /b/secret/x:-rw-------"
	if strings.Join(got, " ") != want {
		t.Errorf("sorted:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestPermTree(t *testing.T) {
	c := example(t)
	tr, err := permTree(c, nil)
	if err != nil {
		t.Fatalf("permTree: %v", err)
	}
	pw, err := c.ReadSecret(c.Gate.Password)
	if err != nil {
		t.Fatal(err)
	}
	var secrets int
	for _, e := range tr.sorted() {
		switch {
		case e.Path == "/gokr-pw.txt":
			if e.Mode != 0o600 || string(e.Data) != string(pw) {
				t.Errorf("/gokr-pw.txt: mode %v, content from the password secret: %v", e.Mode, string(e.Data) == string(pw))
			}
		case strings.HasPrefix(e.Path, "/gate/") && e.Mode.IsDir():
			if e.Mode.Perm() != 0o700 {
				t.Errorf("%s: mode %v, want 0700", e.Path, e.Mode)
			}
		case strings.HasPrefix(e.Path, PermSecrets+"/") && !strings.HasSuffix(e.Path, ".pub"):
			secrets++
			if e.Mode != 0o600 {
				t.Errorf("%s: mode %v, want 0600", e.Path, e.Mode)
			}
		}
	}
	if secrets == 0 {
		t.Errorf("no secret in /perm%s", PermSecrets)
	}
	for _, d := range []string{"vpn", "dyndns", "upsd", "bootstrapd", "bastion"} {
		if e, ok := tr.entries["/gate/"+d]; !ok || !e.Mode.IsDir() {
			t.Errorf("/perm/gate/%s: no state directory", d)
		}
	}

	// A missing secret is an error naming it.
	var removed string
	for _, r := range c.SecretRefs() {
		if r.Scheme == "file" {
			removed = r.Name
			break
		}
	}
	if err := os.Remove(filepath.Join(c.SecretsDir, removed)); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if _, err := permTree(c, nil); err == nil || !strings.Contains(err.Error(), removed) {
		t.Errorf("permTree without %s: error %v, want one naming it", removed, err)
	}
}

func TestUnusedModules(t *testing.T) {
	for rel, want := range map[string]bool{
		"6.12.47-v8":                              false,
		"6.12.47-v8/kernel":                       false,
		"6.12.47-v8/kernel/drivers":               false,
		"6.12.47-v8/kernel/drivers/media":         true,
		"6.12.47-v8/kernel/net/bluetooth":         true,
		"6.12.47-v8/kernel/drivers/bluetooth":     true,
		"6.12.47-v8/kernel/drivers/xen":           true,
		"6.12.47-v8/kernel/drivers/net":           false,
		"6.12.47-v8/kernel/drivers/hid":           false,
		"6.12.47-v8/kernel/drivers/media/usb/uvc": false, // not reached: its parent is skipped
	} {
		if got := unusedModules(rel); got != want {
			t.Errorf("unusedModules(%q) = %v, want %v", rel, got, want)
		}
	}
}
