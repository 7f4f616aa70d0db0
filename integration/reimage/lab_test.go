// Package reimage tests the re-imaging chain (issue 6) under QEMU (TCG)
// against the real bootstrapd (cmd/bootstrapd, proxyDHCP beside the ISP
// box's dnsmasq) and the real operator CLI (`gate reimage`, `gate
// hosts`): the imager's initramfs on gokrazy's kernel.amd64 writing the
// golden image to a virtio disk, the written Debian booting and applying
// its cloud-init NoCloud data from bootstrapd and phoning home, and the
// failures that must leave a host unbootable-but-flagged.
package reimage

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
	"gate/internal/initramfs"
)

const (
	boxAddr  = "10.77.0.1" // the ISP box: dnsmasq, the LAN's DHCP server
	gateAddr = "10.77.0.2" // the gate: bootstrapd
	httpPort = "8080"
)

// base is bootstrapd's URL as the hosts reach it.
func base() string { return "http://" + gateAddr + ":" + httpPort }

// labHost is a host of the lab's site file: each scenario has its own
// MAC, address (reserved on the box unless noLease) and role.
type labHost struct {
	name, mac, ip, role string
	noLease             bool // the box gives it a pool address instead of ip
}

// The roles: "zstd" and "raw" are the golden image in both formats;
// "missing" points at an image bootstrapd does not have; "badsum" has a
// wrong sha256.
var labHosts = []labHost{
	{"ceph-1", "52:54:00:6a:00:10", "10.77.0.10", "zstd", false},
	{"ceph-2", "52:54:00:6a:00:11", "10.77.0.11", "raw", false},
	{"nf-missing", "52:54:00:6a:00:21", "10.77.0.21", "missing", false},
	{"nf-small", "52:54:00:6a:00:22", "10.77.0.22", "raw", false},
	{"nf-badsum", "52:54:00:6a:00:23", "10.77.0.23", "badsum", false},
	{"nf-cut", "52:54:00:6a:00:24", "10.77.0.24", "raw", false},
	{"nf-nolease", "52:54:00:6a:00:25", "10.77.0.25", "zstd", true},
}

func hostNamed(t testing.TB, name string) labHost {
	for _, h := range labHosts {
		if h.name == name {
			return h
		}
	}
	t.Fatalf("no lab host %s", name)
	return labHost{}
}

// golden builds (or takes from the cache) build/golden: make golden.
func golden(t testing.TB) *site.Golden {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g, err := site.BuildGolden(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// imagerFiles is the imager's kernel (its path) and initramfs.
type imagerFiles struct {
	kernel string
	initrd []byte
}

// imagerBuild builds the imager's initramfs from this checkout once per
// test process (like netlab.Build), for every test's bootstrapd.
var imagerBuild = sync.OnceValues(func() (imagerFiles, error) {
	k, b, err := initramfs.Assets(context.Background(), site.RepoRoot())
	return imagerFiles{k, b}, err
})

// siteFile is the lab's site file: every lab host, the four roles (each
// with a user-data template giving an admin user the test's key), and
// bootstrap in proxyDHCP mode.
func siteFile(g *site.Golden, pubKey string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `site: {name: lab, domain: lab.example}
lan: {subnet: 10.77.0.0/24, gateway: %s}
gate: {address: %s/24, password: "file:pw"}
hosts:
`, boxAddr, gateAddr)
	for _, h := range labHosts {
		fmt.Fprintf(&b, "  - {name: %s, macs: [%q], ip: %s, role: %s, boot_local: sanboot}\n", h.name, h.mac, h.ip, h.role)
	}
	userData := `#cloud-config
users:
  - name: admin
    shell: /bin/bash
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    ssh_authorized_keys: [%q]
`
	images := []struct{ role, file, format, sha string }{
		{"zstd", "golden.raw.zst", "zstd", g.Sums["golden.raw.zst"]},
		{"raw", "golden.raw", "raw", g.Sums["golden.raw"]},
		{"missing", "missing.raw.zst", "zstd", g.Sums["golden.raw.zst"]},
		{"badsum", "golden.raw.zst", "zstd", strings.Repeat("0", 64)},
	}
	b.WriteString("roles:\n")
	for _, r := range images {
		fmt.Fprintf(&b, "  %s:\n    image: {url: %q, sha256: %s, format: %s}\n    cloud_init:\n      user_data: |\n",
			r.role, base()+"/images/"+r.file, r.sha, r.format)
		for _, l := range strings.Split(strings.TrimRight(fmt.Sprintf(userData, pubKey), "\n"), "\n") {
			b.WriteString("        " + l + "\n")
		}
	}
	fmt.Fprintf(&b, "bootstrap: {dhcp: proxy, http_port: %s, api_token: \"file:token\"}\n", httpPort)
	return b.String()
}

// lan is the site's LAN: a bridge in "sw" where the ISP box's dnsmasq is
// the DHCP server (reservations for every lab host), a tap for the QEMU
// machine, and the gate's namespace running the real bootstrapd with
// the lab's site file, its state in a temporary directory and the golden
// images served from build/golden under /images/.
type lan struct {
	lab       *netlab.Lab
	sw, gate  *netlab.Host
	tap       string
	box, boot *netlab.Proc
	site      string // the site file (secrets beside it)
	key       string // the admin's private key (the roles' user-data)
	gateCLI   string // the gate binary
	assets    string // bootstrapd's assets: imager/vmlinuz, imager/initramfs.gz
}

func newLAN(t *testing.T, g *site.Golden) *lan {
	l := &lan{lab: netlab.New(t), tap: "tap0", assets: assets(t)}
	l.sw = l.lab.Host("sw")
	l.sw.Bridge("br0", boxAddr+"/24")
	l.gate = l.lab.Host("gate")
	l.lab.Attach(l.sw, "br0", l.gate, "eth0", gateAddr+"/24")
	l.sw.Tap(l.tap, "br0")
	dir := t.TempDir()
	args := []string{"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=br0", "--bind-interfaces", "--no-hosts", "--no-resolv",
		"--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--dhcp-option=option:router," + boxAddr, "--log-dhcp", "--pid-file="}
	for _, h := range labHosts {
		if !h.noLease {
			args = append(args, "--dhcp-host="+h.mac+","+h.ip)
		}
	}
	l.box = l.sw.Start("dnsmasq", nil, args...)
	if err := l.box.WaitFor("DHCP, IP range", 20*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, l.box.Output())
	}

	l.key = filepath.Join(dir, "admin")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@lab", "-f", l.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(l.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets")
	os.MkdirAll(secrets, 0o700)
	os.WriteFile(filepath.Join(secrets, "token"), []byte("lab-token\n"), 0o600)
	os.WriteFile(filepath.Join(secrets, "pw"), []byte("lab-password\n"), 0o600)
	l.site = filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(l.site, []byte(siteFile(g, strings.TrimSpace(string(pub)))), 0o644); err != nil {
		t.Fatal(err)
	}

	bin := netlab.Build(t, "gate/cmd/bootstrapd")
	l.gateCLI = netlab.Build(t, "gate/gate")
	l.boot = l.gate.Start("bootstrapd", nil, bin, "-config", l.site, "-secrets", secrets,
		"-state", filepath.Join(dir, "state"), "-metrics", "", "-assets", l.assets, "-images", g.Dir)
	if err := l.boot.WaitFor("msg=ready", 30*time.Second); err != nil {
		t.Fatalf("bootstrapd: %v\n%s", err, l.boot.Output())
	}
	return l
}

// assets is bootstrapd's assets directory: Debian's iPXE binaries (when
// installed) and the imager's kernel and initramfs (imagerBuild).
func assets(t *testing.T) string {
	im, err := imagerBuild()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"ipxe", "imager"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	cp := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		if _, err := os.Stat("/usr/lib/ipxe/" + f); err == nil {
			cp("/usr/lib/ipxe/"+f, "ipxe/"+f)
		}
	}
	cp(im.kernel, "imager/vmlinuz")
	if err := os.WriteFile(filepath.Join(dir, "imager/initramfs.gz"), im.initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// gateCmd runs the operator's `gate` with the lab's site file from the
// LAN (the admin's machine) and returns its standard output.
func (l *lan) gateCmd(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	out, err := l.sw.Output(append([]string{l.gateCLI, cmd, "-c", l.site}, args...)...)
	if err != nil {
		t.Fatalf("gate %s %s: %v\n%s", cmd, strings.Join(args, " "), err, out)
	}
	return out
}

// reimage flags host with `gate reimage` and returns the instance id it printed.
func (l *lan) reimage(t *testing.T, host string) string {
	t.Helper()
	out := l.gateCmd(t, "reimage", host)
	m := regexp.MustCompile(`flagged for re-imaging \(instance (\S+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gate reimage %s: %q", host, out)
	}
	return m[1]
}

// hostsRow is one row of `gate hosts`, by column title.
type hostsRow map[string]string

// hosts runs `gate hosts` and returns its rows by host name.
func (l *lan) hosts(t *testing.T) (map[string]hostsRow, string) {
	t.Helper()
	out := l.gateCmd(t, "hosts")
	rows, err := parseHosts(out)
	if err != nil {
		t.Fatalf("gate hosts: %v\n%s", err, out)
	}
	return rows, out
}

// columnSep separates the columns tabwriter pads with at least two spaces.
var columnSep = regexp.MustCompile(`\s{2,}`)

func parseHosts(out string) (map[string]hostsRow, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "HOST") {
		return nil, fmt.Errorf("no header line")
	}
	head := columnSep.Split(strings.TrimSpace(lines[0]), -1)
	rows := map[string]hostsRow{}
	for _, l := range lines[1:] {
		f := columnSep.Split(strings.TrimSpace(l), -1)
		if len(f) != len(head) {
			return nil, fmt.Errorf("row %q has %d columns, the header %d", l, len(f), len(head))
		}
		r := hostsRow{}
		for i, h := range head {
			r[h] = f[i]
		}
		rows[r["HOST"]] = r
	}
	return rows, nil
}

// row returns host's row of `gate hosts` (and the whole output).
func (l *lan) row(t *testing.T, host string) (hostsRow, string) {
	t.Helper()
	rows, out := l.hosts(t)
	r, ok := rows[host]
	if !ok {
		t.Fatalf("gate hosts has no row for %s:\n%s", host, out)
	}
	return r, out
}

var installedRE = regexp.MustCompile(`^installed (\S+) ago$`)

// waitInstalledRow waits until `gate hosts` shows host installed (its
// phone-home received) no longer ago than since; it returns the row.
func (l *lan) waitInstalledRow(t *testing.T, host string, since time.Time, d time.Duration) hostsRow {
	t.Helper()
	var r hostsRow
	var out string
	err := netlab.Eventually(d, 2*time.Second, func() error {
		r, out = l.row(t, host)
		m := installedRE.FindStringSubmatch(r["LAST RESULT"])
		if r["STATE"] != "boots from disk" || m == nil {
			return fmt.Errorf("%s: state %q, last result %q", host, r["STATE"], r["LAST RESULT"])
		}
		ago, err := time.ParseDuration(m[1])
		if err != nil || ago > time.Since(since) {
			return fmt.Errorf("%s: installed %s ago, but the test began %s ago", host, m[1], time.Since(since).Round(time.Second))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s\n--- bootstrapd:\n%s", err, out, site.Tail(l.boot.Output(), 30))
	}
	return r
}

// blankDisk makes a sparse disk file of size bytes.
func blankDisk(t testing.TB, size int64) string {
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuNet is the NIC of a lab host's machine on the LAN's tap.
func (l *lan) qemuNet(h labHost) []string {
	return []string{"-netdev", "tap,id=n0,ifname=" + l.tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + h.mac, "-device", "virtio-rng-pci"}
}

// bootImager boots the imager's kernel + initramfs directly (no PXE) as
// host h on disk, in the LAN, pointed at bootstrapd; QEMU exits when the
// imager reboots or powers off.
func (l *lan) bootImager(h labHost, disk string, extraArgs ...string) *netlab.Proc {
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", filepath.Join(l.assets, "imager/vmlinuz"), "-initrd", filepath.Join(l.assets, "imager/initramfs.gz"),
		"-append", strings.Join(append([]string{"console=ttyS0,115200 panic=-1 gate.bootstrap=" + base()}, extraArgs...), " "),
		"-drive", "file=" + disk + ",format=raw,if=virtio"}
	return l.sw.Start("qemu-imager-"+h.name, nil, append(args, l.qemuNet(h)...)...)
}

// waitExit waits for a QEMU to end by itself (reboot or power-off with -no-reboot).
func waitExit(t *testing.T, p *netlab.Proc, d time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(d):
		p.Kill()
		t.Fatalf("%s did not end within %s:\n%s", p.Name, d, site.Tail(p.Output(), 60))
	}
}

// head returns the first n bytes of a file.
func head(t testing.TB, p string, n int) []byte {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}
