package bootstrap

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/tftp"
)

// TestSideBySideTFTP: throughput of our TFTP server and dnsmasq's on the
// same 30 MB file, with Debian's atftp client and the same options, both
// on a namespace's loopback: the median of five transfers each, the two
// servers alternating; and each server's CPU time per transfer.
func TestSideBySideTFTP(t *testing.T) {
	netlab.Bench(t, "dnsmasq", "atftp")
	l := netlab.New(t)
	h := l.Host("tftp")
	root := t.TempDir()
	data := make([]byte, 30<<20)
	rand.Read(data)
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	os.Chmod(root, 0o755)

	d := h.Start("dnsmasq-tftp", nil, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--enable-tftp",
		"--tftp-root="+root, "--listen-address=127.0.0.2", "--bind-interfaces", "--pid-file=", "--user=root")
	if err := d.WaitFor("TFTP root", 20*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, d.Output())
	}
	// Ours, started inside the namespace through a tiny helper: this test
	// binary itself (see TestTFTPHelper).
	self, _ := os.Executable()
	o := h.Start("ours-tftp", []string{"GATE_TFTP_HELPER_ROOT=" + root}, self, "-test.run=^TestTFTPHelper$")
	if err := o.WaitFor("tftp helper ready", 20*time.Second); err != nil {
		t.Fatalf("ours: %v\n%s", err, o.Output())
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, opts := range [][]string{{"blksize 512"}, {"blksize 1468"}, {"blksize 8192"}, {"blksize 1468", "windowsize 16"}} {
		name := ""
		for _, s := range opts {
			name += "_" + strings.ReplaceAll(s, " ", "")
		}
		// Five rounds, the two servers alternating within each round, so
		// that the machine's load changes weigh on both alike; the median
		// of each.
		rates := map[string][]float64{}
		procs := map[string]*netlab.Proc{"dnsmasq": d, "ours": o}
		cpu0 := map[string]time.Duration{}
		for srv, p := range procs {
			cpu0[srv], _ = p.CPUTime()
		}
		for range 5 {
			for _, srv := range []struct{ name, addr string }{{"dnsmasq", "127.0.0.2"}, {"ours", "127.0.0.3"}} {
				args := []string{"atftp"}
				for _, s := range opts {
					args = append(args, "--option", s)
				}
				args = append(args, "-g", "-r", "f.bin", "-l", out, srv.addr, "69")
				os.Remove(out)
				start := time.Now()
				if b, err := h.Run(args...); err != nil {
					t.Fatalf("%s %v: %v %s", srv.name, args, err, b)
				}
				el := time.Since(start).Seconds()
				if st, err := os.Stat(out); err != nil || st.Size() != int64(len(data)) {
					t.Fatalf("%s: short file", srv.name)
				}
				rates[srv.name] = append(rates[srv.name], float64(len(data))/el/1e6)
			}
		}
		rate := map[string]float64{}
		for srv, rs := range rates {
			rate[srv] = netlab.Quantile(rs, 0.5)
			netlab.Report(t, "tftp_"+srv+name, rate[srv], "MB/s")
		}
		netlab.Report(t, "tftp_ratio_ours_over_dnsmasq"+name, rate["ours"]/rate["dnsmasq"], "x")
		// The server's CPU time per transfer (ours polls for a fast
		// client's ACKs, so it spends more of each transfer on the CPU).
		cpu := map[string]float64{}
		for srv, p := range procs {
			c, err := p.CPUTime()
			if err != nil {
				t.Fatal(err)
			}
			cpu[srv] = (c - cpu0[srv]).Seconds() * 1000 / 5
			netlab.Report(t, "tftp_cpu_per_transfer_"+srv+name, cpu[srv], "ms")
		}
		netlab.Report(t, "tftp_cpu_ratio_ours_over_dnsmasq"+name, cpu["ours"]/cpu["dnsmasq"], "x")
	}
}

// TestTFTPHelper serves GATE_TFTP_HELPER_ROOT on 127.0.0.3:69 until killed
// (a helper process for TestSideBySideTFTP; it skips otherwise).
func TestTFTPHelper(t *testing.T) {
	root := os.Getenv("GATE_TFTP_HELPER_ROOT")
	if root == "" {
		t.Skip("helper")
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: 69})
	if err != nil {
		t.Fatal(err)
	}
	println("tftp helper ready " + strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
	(&tftp.Server{Root: root}).Serve(context.Background(), c)
}

// TestSideBySidePXE: power-on → marker of a flagged BIOS host, ours
// (proxyDHCP + HTTP) against dnsmasq (proxyDHCP + TFTP for script,
// kernel and initramfs), beside the same DHCP-only box.
func TestSideBySidePXE(t *testing.T) {
	netlab.Bench(t, "qemu-system-x86_64", "dnsmasq", "curl", "/usr/lib/ipxe/undionly.kpxe")
	x := newLab(t)
	x.api(t, "POST", "/api/hosts/ceph-1/reimage")
	boot := func(name string) float64 {
		start := time.Now()
		q := x.qemu(name, flagged)
		waitExit(t, q, 6*time.Minute)
		if !strings.Contains(q.Output(), marker) {
			t.Fatalf("%s: no marker:\n%s", name, tail(q.Output(), 40))
		}
		return time.Since(start).Seconds()
	}
	ours := boot("qemu-ours")
	x.boot.Stop()

	// dnsmasq as proxyDHCP with TFTP, serving the same files.
	dir := assets(t)
	root := filepath.Join(dir, "tftp")
	os.MkdirAll(root, 0o755)
	for src, dst := range map[string]string{"ipxe/undionly.kpxe": "undionly.kpxe", "imager/vmlinuz": "vmlinuz", "imager/initramfs.gz": "initramfs.gz"} {
		b, _ := os.ReadFile(filepath.Join(dir, src))
		os.WriteFile(filepath.Join(root, dst), b, 0o644)
	}
	script := "#!ipxe\nkernel tftp://" + gateAddr + "/vmlinuz initrd=initramfs.gz console=ttyS0,115200 console=tty0\ninitrd tftp://" + gateAddr + "/initramfs.gz\nboot\n"
	os.WriteFile(filepath.Join(root, "boot.ipxe"), []byte(script), 0o644)
	os.WriteFile(filepath.Join(root, "boot.ipxe.0"), []byte(script), 0o644)
	d := x.gate.Start("dnsmasq-proxy", nil, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
		"--bind-interfaces", "--no-hosts", "--no-resolv", "--dhcp-range=10.78.0.0,proxy", "--enable-tftp", "--tftp-root="+root,
		"--dhcp-userclass=set:ipxe,iPXE", "--pxe-service=tag:!ipxe,x86PC,gate,undionly", "--pxe-service=tag:ipxe,x86PC,gate,boot.ipxe",
		"--pxe-prompt=gate,0", "--log-dhcp", "--pid-file=", "--user=root", "--dhcp-leasefile="+filepath.Join(dir, "leases"))
	if err := d.WaitFor("TFTP root", 20*time.Second); err != nil {
		t.Fatalf("dnsmasq proxy: %v\n%s", err, d.Output())
	}
	theirs := boot("qemu-dnsmasq")
	netlab.Report(t, "pxe_power_on_to_marker_ours", ours, "s")
	netlab.Report(t, "pxe_power_on_to_marker_dnsmasq", theirs, "s")
	netlab.Report(t, "pxe_ratio_ours_over_dnsmasq", ours/theirs, "x")
}
