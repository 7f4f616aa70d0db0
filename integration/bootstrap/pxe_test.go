// Package bootstrap tests bootstrapd with real peers: QEMU machines whose
// iPXE ROM boots on a LAN whose DHCP server is Debian's dnsmasq (DHCP
// only, as an ISP box), bootstrapd answering as proxyDHCP beside it.
package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
	"gate/internal/initramfs"
)

const (
	boxAddr  = "10.78.0.1"
	gateAddr = "10.78.0.2"
	flagged  = "52:54:00:78:00:11"
	local    = "52:54:00:78:00:12"
	stranger = "52:54:00:78:00:99"
	marker   = "GATE-TEST-INIT-MARKER"
)

// assets builds the assets directory: iPXE binaries from Debian's ipxe,
// kernel.amd64's vmlinuz and an initramfs whose /init prints the marker.
func assets(t *testing.T) string {
	t.Helper()
	root := site.RepoRoot()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.MkdirAll(filepath.Join(dir, "imager"), 0o755)
	for _, f := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		b, err := os.ReadFile("/usr/lib/ipxe/" + f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "ipxe", f), b, 0o644)
	}
	k, err := initramfs.KernelPath(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "imager", "vmlinuz"), kb, 0o644)
	bin := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command("go", "build", "-o", bin, "./testinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testinit: %v\n%s", err, out)
	}
	ib, _ := os.ReadFile(bin)
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, ib); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "imager", "initramfs.gz"), buf.Bytes(), 0o644)
	return dir
}

const siteYAML = `
site: {name: lab, domain: lab.example}
lan: {subnet: 10.78.0.0/24, gateway: 10.78.0.1}
gate: {address: 10.78.0.2/24, password: "file:pw"}
hosts:
  - {name: ceph-1, macs: ["` + flagged + `"], ip: 10.78.0.11, role: ceph, boot_local: sanboot}
  - {name: ceph-2, macs: ["` + local + `"], ip: 10.78.0.12, role: ceph, boot_local: sanboot}
roles:
  ceph:
    image: {url: "http://10.78.0.2:8080/images/golden.raw", sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
bootstrap: {api_token: "file:token"}
`

type lab struct {
	l         *netlab.Lab
	sw, gate  *netlab.Host
	box, boot *netlab.Proc
}

func newLab(t *testing.T) *lab {
	x := &lab{l: netlab.New(t)}
	x.sw = x.l.Host("sw")
	x.sw.Bridge("br0", boxAddr+"/24")
	x.gate = x.l.Host("gate")
	x.l.Attach(x.sw, "br0", x.gate, "eth0", gateAddr+"/24")
	x.sw.Tap("tap0", "br0")
	dir := t.TempDir()
	// The ISP box: DHCP only, reservations for the two hosts.
	x.box = x.sw.Start("dnsmasq", nil, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=br0", "--bind-interfaces", "--no-hosts", "--no-resolv",
		"--dhcp-range=10.78.0.50,10.78.0.99,255.255.255.0,1h",
		"--dhcp-host="+flagged+",10.78.0.11", "--dhcp-host="+local+",10.78.0.12",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--dhcp-option=option:router,"+boxAddr, "--log-dhcp", "--pid-file=")
	if err := x.box.WaitFor("DHCP, IP range", 20*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, x.box.Output())
	}
	secrets := filepath.Join(dir, "secrets")
	os.MkdirAll(secrets, 0o700)
	os.WriteFile(filepath.Join(secrets, "token"), []byte("test-token\n"), 0o600)
	os.WriteFile(filepath.Join(secrets, "pw"), []byte("pw\n"), 0o600)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, []byte(siteYAML), 0o644)
	bin := netlab.Build(t, "gate/cmd/bootstrapd")
	x.boot = x.gate.Start("bootstrapd", nil, bin, "-config", site, "-secrets", secrets, "-state", filepath.Join(dir, "state"),
		"-metrics", "", "-assets", assets(t))
	if err := x.boot.WaitFor("msg=ready", 30*time.Second); err != nil {
		t.Fatalf("bootstrapd: %v\n%s", err, x.boot.Output())
	}
	return x
}

// api calls bootstrapd's API from inside the gate's namespace with curl.
func (x *lab) api(t *testing.T, method, path string) string {
	t.Helper()
	out, err := x.gate.Run("curl", "-sS", "-f", "-X", method, "-H", "Authorization: Bearer test-token", "http://"+gateAddr+":8080"+path)
	if err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, out)
	}
	return out
}

func (x *lab) qemu(name, mac string, extra ...string) *netlab.Proc {
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
		"-boot", "order=n", "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac}
	return x.sw.Start(name, nil, append(args, extra...)...)
}

func waitExit(t *testing.T, p *netlab.Proc, d time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(d):
		p.Kill()
		t.Fatalf("%s still running after %s:\n%s", "qemu", d, tail(p.Output(), 40))
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestIntegrationPXEBIOS: a flagged host boots the role's kernel and
// initramfs over our HTTP through the iPXE ROM; an unflagged host is sent
// to its disk; a MAC outside the site file gets nothing from us.
func TestIntegrationPXEBIOS(t *testing.T) {
	netlab.Require(t, "qemu-system-x86_64", "dnsmasq", "curl", "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/qemu/efi-virtio.rom")
	x := newLab(t)
	x.api(t, "POST", "/api/hosts/ceph-1/reimage")

	start := time.Now()
	q := x.qemu("qemu-flagged", flagged)
	waitExit(t, q, 6*time.Minute)
	if !strings.Contains(q.Output(), marker) {
		t.Fatalf("flagged host did not run the role's initramfs:\n%s\n--- bootstrapd:\n%s", tail(q.Output(), 60), tail(x.boot.Output(), 30))
	}
	t.Logf("flagged: power-on → marker %s", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(x.boot.Output(), "to=imager") {
		t.Fatalf("bootstrapd log lacks the chain:\n%s", x.boot.Output())
	}

	// Unflagged: its script sends it to the disk (blank here: sanboot fails, the VM stops).
	q = x.qemu("qemu-local", local)
	if err := q.WaitFor("booting ceph-2 from its disk", 4*time.Minute); err != nil {
		q.Kill()
		t.Fatalf("unflagged host not sent to disk: %v\n%s", err, tail(q.Output(), 40))
	}
	q.Kill()
	if hosts := x.api(t, "GET", "/api/hosts"); !strings.Contains(hosts, `"last_boot_to":"disk"`) {
		t.Fatalf("hosts: %s", hosts)
	}

	// A stranger: dnsmasq gives it an address, we stay silent.
	q = x.qemu("qemu-stranger", stranger)
	err := netlab.Eventually(3*time.Minute, time.Second, func() error {
		if !strings.Contains(x.box.Output(), "DHCPACK(br0)") || !strings.Contains(x.box.Output(), stranger) {
			return fmt.Errorf("no DHCPACK for %s yet", stranger)
		}
		return nil
	})
	time.Sleep(5 * time.Second) // let its ROM try to boot: what we would answer would be logged by now
	q.Kill()
	if err != nil {
		t.Fatalf("%v\n%s", err, x.box.Output())
	}
	if strings.Contains(x.boot.Output(), stranger) {
		t.Fatalf("bootstrapd answered a MAC outside the site file:\n%s", x.boot.Output())
	}
}
