package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/config"
	"gate/internal/gomodule"
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
			"/gokrazy/staticip /gokrazy/randomd /user/firewall /user/clock /user/vpn /user/dyndns /user/upsd /user/bootstrapd /user/bastion /user/statusd"},
		{"dhcp, no sections", func(c *config.Config) {
			c.Gate.Address = "dhcp"
			c.VPN, c.DynDNS, c.UPS, c.Bootstrap, c.Bastion, c.Status = nil, nil, nil, nil, nil, nil
		}, "/gokrazy/dhcp /gokrazy/lanroute /gokrazy/randomd /user/firewall /user/clock"},
		{"firewall off", func(c *config.Config) {
			c.Gate.Address = "dhcp"
			c.VPN, c.DynDNS, c.UPS, c.Bootstrap, c.Bastion, c.Status = nil, nil, nil, nil, nil, nil
			c.Firewall = &config.Firewall{Off: true}
		}, "/gokrazy/dhcp /gokrazy/lanroute /gokrazy/randomd /user/clock"},
		{"only the UPS", func(c *config.Config) {
			c.VPN, c.DynDNS, c.Bootstrap, c.Bastion = nil, nil, nil, nil
		}, "/gokrazy/staticip /gokrazy/randomd /user/firewall /user/clock /user/upsd /user/statusd"},
		{"alerts without the page", func(c *config.Config) {
			c.VPN, c.DynDNS, c.UPS, c.Bootstrap, c.Bastion, c.Status = nil, nil, nil, nil, nil, nil
			c.Alerts = &config.Alerts{Webhook: &config.Webhook{URL: "http://192.168.1.9/x"}}
		}, "/gokrazy/staticip /gokrazy/randomd /user/firewall /user/clock /user/statusd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := example(t)
			tc.modify(c)
			floor := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			ps := programs(c, floor)
			if got := paths(ps); got != tc.want {
				t.Errorf("programs:\n got %s\nwant %s", got, tc.want)
			}
			for _, p := range ps {
				if p.Path == "/gokrazy/staticip" && !strings.Contains(strings.Join(p.Args, " "), "-address 192.168.1.2/24") {
					t.Errorf("staticip args %q lack the site's address", p.Args)
				}
				args := strings.Join(p.Args, " ")
				switch p.Daemon {
				case "clock":
					if !strings.Contains(args, "-floor=2026-11-01T00:00:00Z") {
						t.Errorf("clock args %q lack the floor", args)
					}
				case "vpn", "dyndns": // time.wait (the example's default, 10m)
					if !strings.Contains(args, "-wait-clock=10m0s") {
						t.Errorf("%s args %q lack -wait-clock=10m0s", p.Daemon, args)
					}
				}
				// With the firewall, every other daemon waits for its policy.
				fwOn := c.Firewall == nil || !c.Firewall.Off
				if wantWait := p.Daemon != "" && p.Daemon != "firewall" && fwOn; strings.Contains(args, "-firewall-wait=10s") != wantWait {
					t.Errorf("%s args %q: -firewall-wait=10s %v, want %v", p.Path, args, !wantWait, wantWait)
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

// TestBootTreeFollowsModel: gate.model chooses the boot partition's device
// trees, firmware and config.txt; a pc builds amd64.
func TestBootTreeFollowsModel(t *testing.T) {
	kdir, fdir := t.TempDir(), t.TempDir()
	for _, n := range []string{"vmlinuz", "bcm2710-rpi-3-b.dtb", "bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb", "overlays/disable-bt.dtbo"} {
		os.MkdirAll(filepath.Dir(filepath.Join(kdir, n)), 0o755)
		os.WriteFile(filepath.Join(kdir, n), []byte(n), 0o644)
	}
	for _, n := range []string{"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat", "start_x.elf"} {
		os.WriteFile(filepath.Join(fdir, n), []byte(n), 0o644)
	}
	kernel, firmware := gomodule.Module{Path: "kernel.rpi", Dir: kdir}, gomodule.Module{Path: "firmware", Dir: fdir}
	for _, tc := range []struct {
		model      string
		want, not  []string
		configLine string
	}{
		{"rpi3", []string{"/bcm2710-rpi-3-b.dtb", "/bcm2837-rpi-3-b.dtb", "/bootcode.bin", "/start.elf", "/fixup.dat", "/overlays/disable-bt.dtbo"}, []string{"/bcm2711-rpi-4-b.dtb", "/start4.elf", "/bcm2712-rpi-5-b.dtb", "/start_x.elf"}, "arm_control=0x200"},
		{"rpi4", []string{"/bcm2711-rpi-4-b.dtb", "/start4.elf", "/fixup4.dat"}, []string{"/bcm2710-rpi-3-b.dtb", "/bootcode.bin", "/start.elf", "/bcm2712-rpi-5-b.dtb"}, "arm_control=0x200"},
		{"rpi5", []string{"/bcm2712-rpi-5-b.dtb", "/overlays/disable-bt.dtbo"}, []string{"/start4.elf", "/start.elf", "/bootcode.bin", "/bcm2711-rpi-4-b.dtb"}, "kernel=vmlinuz"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			c := example(t)
			c.Gate.Model = tc.model
			tr, err := bootTree(Options{Config: c, Arch: "arm64"}, kernel, firmware, "01020304-02")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.want {
				if _, ok := tr.entries[p]; !ok {
					t.Errorf("%s lacks %s", tc.model, p)
				}
			}
			for _, p := range tc.not {
				if _, ok := tr.entries[p]; ok {
					t.Errorf("%s carries %s", tc.model, p)
				}
			}
			if cfg := string(tr.entries["/config.txt"].Data); !strings.Contains(cfg, tc.configLine) || !strings.Contains(cfg, "kernel=vmlinuz") || (tc.model == "rpi5") == strings.Contains(cfg, "arm_control") {
				t.Errorf("config.txt of %s:\n%s", tc.model, cfg)
			}
		})
	}
	// A firmware without the model's files is refused with its name.
	c := example(t)
	c.Gate.Model = "rpi4"
	os.Remove(filepath.Join(fdir, "start4.elf"))
	if _, err := bootTree(Options{Config: c, Arch: "arm64"}, kernel, firmware, "x"); err == nil || !strings.Contains(err.Error(), "start4.elf") {
		t.Errorf("missing start4.elf: %v", err)
	}
	// pc: amd64 by default, arm64 refused.
	c.Gate.Model = "pc"
	o := Options{Config: c, Output: "x"}
	if err := o.defaults(); err != nil || o.Arch != "amd64" {
		t.Errorf("pc: arch %q, %v; want amd64", o.Arch, err)
	}
	o = Options{Config: c, Output: "x", Arch: "arm64"}
	if err := o.defaults(); err == nil {
		t.Error("pc with --arch arm64 accepted")
	}
}
