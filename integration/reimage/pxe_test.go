package reimage

import (
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationImagerPXE runs the whole chain from a blank disk through
// the real iPXE ROM (BIOS, QEMU's virtio-net ROM from ipxe-qemu) and the
// real bootstrapd beside the box's DHCP: `gate reimage ceph-1`; power-on:
// bootstrapd's proxyDHCP and TFTP hand out undionly.kpxe, its per-host
// script boots the imager, which writes the disk and reboots; the next
// power-on's PXE boot is sent to the disk, Debian applies bootstrapd's
// NoCloud data and phones home, and `gate hosts` shows it installed and
// booting from its disk.
func TestIntegrationImagerPXE(t *testing.T) {
	netlab.Require(t, append(requirements, "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/qemu/efi-virtio.rom")...)
	g := golden(t)
	l := newLAN(t, g)
	h := hostNamed(t, "ceph-1")

	disk := blankDisk(t, 2<<30)
	qemu := func(name string) *netlab.Proc {
		args := []string{"qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
			"-drive", "file=" + disk + ",format=raw,if=virtio", "-boot", "order=n"}
		return l.sw.Start(name, nil, append(args, l.qemuNet(h)...)...)
	}
	start := time.Now()
	instance := l.reimage(t, h.name)
	q := qemu("qemu-pxe-imager")
	waitExit(t, q, 15*time.Minute)
	if !strings.Contains(q.Output(), "imager done; rebooting") {
		t.Fatalf("imager over PXE did not succeed:\n%s\n--- bootstrapd:\n%s", site.Tail(q.Output(), 60), site.Tail(l.boot.Output(), 30))
	}
	imaged := time.Since(start)
	r, out := l.row(t, h.name)
	if r["STATE"] != "written" || !strings.HasSuffix(r["LAST BOOT"], "→ imager") {
		t.Fatalf("after the imager, gate hosts shows:\n%s", out)
	}
	seed, err := seedFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(seed, "(instance "+instance+")") {
		t.Fatalf("seed of another instance than %s:\n%s", instance, seed)
	}

	// Second power-on: PXE again, sent to the disk.
	bootStart := time.Now()
	vm := qemu("qemu-pxe-disk")
	defer vm.Kill()
	if err := vm.WaitFor("booting "+h.name+" from its disk", 5*time.Minute); err != nil {
		t.Fatalf("second PXE boot not sent to the disk: %v\n%s\n--- bootstrapd:\n%s", err, site.Tail(vm.Output(), 40), site.Tail(l.boot.Output(), 30))
	}
	l.waitInstalled(t, vm, h, start)
	r, out = l.row(t, h.name)
	if !strings.HasSuffix(r["LAST BOOT"], "→ disk") {
		t.Fatalf("gate hosts after the install:\n%s", out)
	}
	t.Logf("flag → PXE → imager → reboot %s; PXE → disk → ssh + phone-home %s; flag → phone-home %s",
		imaged.Round(time.Second), time.Since(bootStart).Round(time.Second), time.Since(start).Round(time.Second))
}
