package reimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestIntegrationImagerPXE runs the chain from a blank disk through the
// real iPXE ROM (BIOS, QEMU's virtio-net ROM from ipxe-qemu): dnsmasq
// hands out undionly.kpxe by TFTP, then the iPXE script of the contract
// boots the imager's kernel and initramfs over HTTP; the imager writes
// the disk and reboots; the next PXE boot is sent to the disk, Debian
// applies its NoCloud data and phones home. The server here plays
// bootstrapd's part of the contract (see cmd/bootstrapd for the real one).
func TestIntegrationImagerPXE(t *testing.T) {
	netlab.Require(t, append(requirements, "/usr/lib/ipxe/undionly.kpxe")...)
	_, zst, sums := golden(t)
	kernel, initrd := imagerBoot(t)
	tftp := t.TempDir()
	b, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tftp, "undionly.kpxe"), b, 0o644)
	l := newLAN(t, "--enable-tftp", "--tftp-root="+tftp, "--dhcp-match=set:ipxe,175",
		"--dhcp-boot=tag:!ipxe,undionly.kpxe", "--dhcp-boot=tag:ipxe,"+base()+"/boot.ipxe")
	s := startJobServer(t, l)
	key := s.cloudConfig(t, "ceph-1")
	s.files["/images/golden.raw.zst"] = zst
	s.files["/assets/imager/vmlinuz"] = kernel
	s.files["/assets/imager/initramfs.gz"] = initrd
	s.job = s.jobFor("ceph-1", "/images/golden.raw.zst", "zstd", sums["golden.raw.zst"])

	disk := blankDisk(t, 2<<30)
	qemu := func(name string) *netlab.Proc {
		return l.sw.Start(name, nil, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
			"-drive", "file="+disk+",format=raw,if=virtio", "-boot", "order=n",
			"-netdev", "tap,id=n0,ifname="+l.tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac="+vmMAC, "-device", "virtio-rng-pci")
	}
	start := time.Now()
	q := qemu("qemu-pxe-imager")
	waitExit(t, q, 15*time.Minute)
	d, ok := s.lastDone()
	if !ok || !d.OK || !strings.Contains(q.Output(), "imager done; rebooting") {
		t.Fatalf("imager over PXE did not succeed (%+v):\n%s", d, tail(q.Output(), 60))
	}
	imaged := time.Since(start)
	if _, err := seedFile(t, disk); err != nil {
		t.Fatal(err)
	}

	// Second power-on: PXE again, sent to the disk.
	vm := qemu("qemu-pxe-disk")
	defer vm.Kill()
	booted := s.waitInstalled(t, l, vm, key, "ceph-1")
	s.mu.Lock()
	boots := s.pxeBoots
	s.mu.Unlock()
	if boots < 2 {
		t.Fatalf("%d PXE boots, want 2 (the second sent to disk)", boots)
	}
	t.Logf("PXE → imager → reboot %s; PXE → disk → ssh + phone-home %s; power-on → phone-home %s", imaged, booted, time.Since(start))
}
