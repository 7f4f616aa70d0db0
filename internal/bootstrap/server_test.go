package bootstrap

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/config"
	"gate/internal/imager"
)

const site = `
site: {name: t, domain: t.example}
lan: {subnet: 10.9.0.0/24, gateway: 10.9.0.1}
gate: {address: 10.9.0.2/24}
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: 10.9.0.11, role: ceph, disk: /dev/vda}
  - {name: inst-1, macs: ["52:54:00:00:02:01"], ip: 10.9.0.21, role: inst, boot_local: exit}
roles:
  ceph:
    image: {url: "http://10.9.0.2:8080/images/g.raw.zst", sha256: "` + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + `", format: zstd}
    cloud_init:
      user_data: |
        #cloud-config
        runcmd: ["echo {{.Name}}"]
  inst:
    installer: {kernel: "http://10.9.0.2:8080/assets/inst/linux", initrd: "http://10.9.0.2:8080/assets/inst/initrd.gz", args: "auto=true"}
bootstrap: {api_token: "env:GATE_TEST_TOKEN"}
`

type fixture struct {
	t     *testing.T
	s     *Server
	h     http.Handler
	neigh map[netip.Addr]string
}

func newFixture(t *testing.T, dir string) *fixture {
	t.Setenv("GATE_TEST_TOKEN", "tok")
	c, err := config.Parse("site.yaml", []byte(site), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	assets := t.TempDir()
	os.MkdirAll(filepath.Join(assets, "imager"), 0o755)
	os.WriteFile(filepath.Join(assets, "imager", "vmlinuz"), []byte("0123456789"), 0o644)
	f := &fixture{t: t, neigh: map[netip.Addr]string{
		netip.MustParseAddr("10.9.0.11"): "52:54:00:00:01:01",
		netip.MustParseAddr("10.9.0.21"): "52:54:00:00:01:01", // spoofing ceph-1's MAC
	}}
	f.s = &Server{Config: c, Store: st, Base: "http://10.9.0.2:8080", GateIP: netip.MustParseAddr("10.9.0.2"),
		Assets: assets, Images: filepath.Join(dir, "images"), Token: []byte("tok"),
		Neighbour: func(ip netip.Addr) (net.HardwareAddr, bool) {
			m, ok := f.neigh[ip]
			hw, _ := net.ParseMAC(m)
			return hw, ok
		}}
	if f.h, err = f.s.Handler(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) do(method, path, from, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = from + ":40000"
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func (f *fixture) want(w *httptest.ResponseRecorder, code int, contains string) {
	f.t.Helper()
	if w.Code != code || !strings.Contains(w.Body.String(), contains) {
		f.t.Fatalf("got %d %q, want %d containing %q", w.Code, w.Body.String(), code, contains)
	}
}

func TestReimageFlow(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	const ceph = "10.9.0.11"
	auth := []string{"Authorization", "Bearer tok"}

	// API needs the token.
	f.want(f.do("GET", "/api/hosts", "10.9.0.50", ""), 401, "token")
	f.want(f.do("POST", "/api/hosts/ceph-1/reimage", "10.9.0.50", "", "Authorization", "Bearer nope"), 401, "token")
	f.want(f.do("POST", "/api/hosts/nope/reimage", "10.9.0.50", "", auth...), 404, "no host")

	// Not flagged: disk, no job.
	f.want(f.do("GET", "/ipxe/52-54-00-00-01-01", ceph, ""), 200, "sanboot --no-describe --drive 0x80")
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", ceph, ""), 404, "not flagged")
	f.want(f.do("GET", "/ipxe/52-54-00-00-09-09", ceph, ""), 404, "unknown MAC")

	f.want(f.do("POST", "/api/hosts/ceph-1/reimage", "10.9.0.50", "", auth...), 200, `"phase":"flagged"`)
	id := f.s.Store.Get("ceph-1").InstanceID
	f.want(f.do("GET", "/ipxe/52-54-00-00-01-01", ceph, ""), 200,
		"kernel http://10.9.0.2:8080/assets/imager/vmlinuz initrd=initramfs.gz console=ttyS0,115200 console=tty0 gate.bootstrap=http://10.9.0.2:8080\ninitrd http://10.9.0.2:8080/assets/imager/initramfs.gz\nboot")

	// The job: only the flagged MAC from its own address. A stranger
	// claiming the MAC changes nothing; the host's own imager at an
	// address the box gave instead of its reservation is refused, and
	// the reason kept for `gate hosts` (once).
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", "10.9.0.99", ""), 403, "not 10.9.0.99")
	if st := f.s.Store.Get("ceph-1"); st.LastError != "" || st.Phase != PhaseFlagged {
		t.Fatalf("a stranger's request changed the state: %+v", st)
	}
	f.neigh[netip.MustParseAddr("10.9.0.150")] = "52:54:00:00:01:01"
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", "10.9.0.150", ""), 403, "not 10.9.0.150")
	const wrongAddr = "the imager got the address 10.9.0.150, not ceph-1's 10.9.0.11: reserve 10.9.0.11 for 52:54:00:00:01:01 on the LAN's DHCP server"
	if st := f.s.Store.Get("ceph-1"); st.LastError != wrongAddr || st.LastResult != "failed: "+wrongAddr || st.Phase != PhaseFlagged || st.ErrorAt.IsZero() {
		t.Fatalf("the wrong address is not recorded: %+v", st)
	}
	f.want(f.do("GET", "/api/hosts", "10.9.0.50", "", auth...), 200, "reserve 10.9.0.11")
	w := f.do("GET", "/imager/job?mac=52:54:00:00:01:01", ceph, "")
	f.want(w, 200, "")
	job, err := imager.ParseJob(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if job.Host != "ceph-1" || job.Disk != "/dev/vda" || job.URL != "http://10.9.0.2:8080/images/g.raw.zst" || job.Format != "zstd" ||
		job.SeedURL != "http://10.9.0.2:8080/nocloud/" || job.InstanceID != id {
		t.Fatalf("job %+v", job)
	}

	f.want(f.do("POST", "/imager/progress", ceph, `{"mac":"52:54:00:00:01:01","written":5,"total":10}`), 204, "")
	f.want(f.do("POST", "/imager/done", ceph, `{"mac":"52:54:00:00:01:01","ok":false,"error":"disk too small"}`), 204, "")
	if st := f.s.Store.Get("ceph-1"); st.Phase != PhaseFlagged || st.LastError != "disk too small" || st.Written != 5 {
		t.Fatalf("after failure: %+v", st)
	}
	f.want(f.do("GET", "/api/hosts", "10.9.0.50", "", auth...), 200, "disk too small")
	f.want(f.do("POST", "/imager/done", ceph, `{"mac":"52:54:00:00:01:01","ok":true}`), 204, "")
	// The imager sends its success again when our answer was lost: taken
	// as the same; a failure after it is refused (409: not retried).
	f.want(f.do("POST", "/imager/done", ceph, `{"mac":"52:54:00:00:01:01","ok":true}`), 204, "")
	f.want(f.do("POST", "/imager/done", ceph, `{"mac":"52:54:00:00:01:01","ok":false,"error":"late"}`), 409, "not being re-imaged")
	if st := f.s.Store.Get("ceph-1"); st.Phase != PhaseWritten || st.LastResult != "written" || st.LastError != "" {
		t.Fatalf("after a repeated report: %+v", st)
	}
	// Written: the next PXE boot goes to the disk (no loop), and the job is gone.
	f.want(f.do("GET", "/ipxe/52-54-00-00-01-01", ceph, ""), 200, "sanboot")
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", ceph, ""), 404, "not flagged")

	// NoCloud by address and neighbour MAC.
	w = f.do("GET", "/nocloud/meta-data", ceph, "")
	f.want(w, 200, "instance-id: "+id)
	f.want(f.do("GET", "/nocloud/user-data", ceph, ""), 200, "url: http://10.9.0.2:8080/nocloud/phone-home")
	f.want(f.do("GET", "/nocloud/user-data", ceph, ""), 200, "echo ceph-1")
	f.want(f.do("GET", "/nocloud/ceph-1/network-config", ceph, ""), 200, "52:54:00:00:01:01")
	f.want(f.do("GET", "/nocloud/inst-1/meta-data", ceph, ""), 403, "not inst-1")
	f.want(f.do("GET", "/nocloud/meta-data", "10.9.0.21", ""), 403, "not its")
	f.want(f.do("GET", "/nocloud/meta-data", "10.9.0.77", ""), 403, "no host")

	// Phone-home of another instance is refused; the right one ends the install.
	form := url.Values{"instance_id": {"ceph-1-old"}}.Encode()
	f.want(f.do("POST", "/nocloud/phone-home", ceph, form, "Content-Type", "application/x-www-form-urlencoded"), 409, "not ceph-1's current")
	form = url.Values{"instance_id": {id}, "hostname": {"ceph-1"}}.Encode()
	f.want(f.do("POST", "/nocloud/phone-home", ceph, form, "Content-Type", "application/x-www-form-urlencoded"), 200, "")

	// Persisted.
	st2, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := st2.Get("ceph-1"); st.Phase != PhaseIdle || st.InstalledAt.IsZero() || st.LastResult != "ok" || st.InstanceID != id {
		t.Fatalf("persisted %+v", st)
	}
	var hosts []HostStatus
	json.Unmarshal(f.do("GET", "/api/hosts", "10.9.0.50", "", auth...).Body.Bytes(), &hosts)
	if len(hosts) != 2 || hosts[0].Name != "ceph-1" || hosts[0].LastBootTo != "disk" {
		t.Fatalf("hosts %+v", hosts)
	}

	// Re-flagging makes a new instance id.
	time.Sleep(2 * time.Millisecond)
	f.want(f.do("POST", "/api/hosts/ceph-1/reimage", "10.9.0.50", "", auth...), 200, "flagged")
	if f.s.Store.Get("ceph-1").InstanceID == id {
		t.Fatal("same instance id for a new install")
	}
	f.want(f.do("DELETE", "/api/hosts/ceph-1/reimage", "10.9.0.50", "", auth...), 200, "cancelled")
	f.want(f.do("GET", "/ipxe/52-54-00-00-01-01", ceph, ""), 200, "sanboot")
}

func TestInstallerAndAssets(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.neigh[netip.MustParseAddr("10.9.0.21")] = "52:54:00:00:02:01"
	f.want(f.do("POST", "/api/hosts/inst-1/reimage", "10.9.0.50", "", "Authorization", "Bearer tok"), 200, "flagged")
	f.want(f.do("GET", "/ipxe/52:54:00:00:02:01", "10.9.0.21", ""), 200,
		"kernel http://10.9.0.2:8080/assets/inst/linux initrd=initrd.gz auto=true ds=nocloud-net;s=http://10.9.0.2:8080/nocloud/\ninitrd http://10.9.0.2:8080/assets/inst/initrd.gz")
	// The installer's reboot goes to disk.
	f.want(f.do("GET", "/ipxe/52:54:00:00:02:01", "10.9.0.21", ""), 200, "exit")
	w := f.do("GET", "/assets/imager/vmlinuz", "10.9.0.21", "", "Range", "bytes=2-4")
	f.want(w, 206, "234")
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(f.s.Assets, "out"))
	if w := f.do("GET", "/assets/out/secret", "10.9.0.21", ""); w.Code == 200 {
		t.Fatalf("symlink out of the assets served: %q", w.Body.String())
	}
	f.want(f.do("GET", "/boot.ipxe", "10.9.0.21", ""), 200, "chain http://10.9.0.2:8080/ipxe/${net0/mac:hexhyp}")
}

// TestFactsShutdownKey: each host gets the gate's shutdown key for its
// shutdown.ssh_user, allowing its group's pre-steps and their undo, and its
// shutdown command when it is shut down over SSH.
func TestFactsShutdownKey(t *testing.T) {
	const ups = `
ups:
  source: usb
  users: [{name: admin, password: "inline:x", role: admin}, {name: compute-1, password: "inline:x"}, {name: ceph-1, password: "inline:x"}, {name: pi-1, password: "inline:x"}]
  shutdown_groups: [{name: compute, pre_steps: [k3s-drain]}, {name: ceph, pre_steps: [ceph-noout]}, {name: other}]
hosts:
  - {name: compute-1, macs: ["52:54:00:00:01:01"], ip: 10.9.0.11, role: r, shutdown: {group: compute}}
  - {name: ceph-1, macs: ["52:54:00:00:01:02"], ip: 10.9.0.12, role: r, shutdown: {group: ceph, ssh_user: ops}}
  - {name: nas-1, macs: ["52:54:00:00:01:03"], ip: 10.9.0.13, role: r, shutdown: {group: ceph, method: ssh, command: "systemctl poweroff"}}
  - {name: pi-1, macs: ["52:54:00:00:01:04"], ip: 10.9.0.14, role: r, shutdown: {group: other}}
roles: {r: {installer: {kernel: "http://10.9.0.2:8080/k", initrd: "http://10.9.0.2:8080/i"}}}
`
	base := "site: {name: t}\nlan: {subnet: 10.9.0.0/24, gateway: 10.9.0.1}\ngate: {address: 10.9.0.2/24}\n"
	c, err := config.Parse("site.yaml", []byte(base+ups), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: c, GateIP: netip.MustParseAddr("10.9.0.2"), ShutdownKey: func(ref config.Secret) string {
		return "restrict,command=x " + string(ref)
	}}
	for _, tc := range []struct {
		host, user string
		cmds       []string // "" : no key
	}{
		{"compute-1", "root", []string{"kubectl drain compute-1 --ignore-daemonsets --delete-emptydir-data --force --timeout=60s", "kubectl uncordon compute-1"}},
		{"ceph-1", "ops", []string{"ceph osd set noout", "ceph osd unset noout"}},
		{"nas-1", "root", []string{"ceph osd set noout", "ceph osd unset noout", "systemctl poweroff"}},
		{"pi-1", "", nil}, // no pre-steps, shut down by NUT: no key
	} {
		var h *config.Host
		for i := range c.Hosts {
			if c.Hosts[i].Name == tc.host {
				h = &c.Hosts[i]
			}
		}
		f := s.Facts(h, "i")
		if tc.user == "" {
			if f.GateKey != "" {
				t.Errorf("%s got a key: %q", tc.host, f.GateKey)
			}
			continue
		}
		if f.GateKey != "restrict,command=x file:shutdown_ed25519_key" || f.GateUser != tc.user ||
			strings.Join(f.GateCommands, "|") != strings.Join(tc.cmds, "|") {
			t.Errorf("%s: key %q user %q commands %q, want user %q commands %q", tc.host, f.GateKey, f.GateUser, f.GateCommands, tc.user, tc.cmds)
		}
	}
}
