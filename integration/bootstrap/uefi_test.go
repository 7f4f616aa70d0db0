package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestIntegrationPXEUEFI: OVMF's own PXE client (arch 7, no iPXE) gets
// snponly.efi from our proxyDHCP and TFTP, iPXE then fetches the host's
// script over HTTP and boots the role's kernel and initramfs.
func TestIntegrationPXEUEFI(t *testing.T) {
	netlab.Require(t, "qemu-system-x86_64", "dnsmasq", "curl", "/usr/lib/ipxe/snponly.efi", "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd")
	x := newLab(t)
	x.api(t, "POST", "/api/hosts/ceph-1/reimage")
	vars := filepath.Join(t.TempDir(), "vars.fd")
	b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS.fd")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(vars, b, 0o644)
	start := time.Now()
	// romfile= empties the NIC's option ROM: OVMF's built-in PXE (EDK2)
	// speaks to us, not an iPXE ROM.
	q := x.qemu("qemu-uefi", flagged+",romfile=",
		"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
		"-drive", "if=pflash,format=raw,file="+vars)
	waitExit(t, q, 8*time.Minute)
	if !strings.Contains(q.Output(), marker) {
		t.Fatalf("UEFI host did not run the role's initramfs:\n%s\n--- bootstrapd:\n%s", tail(q.Output(), 60), tail(x.boot.Output(), 30))
	}
	t.Logf("UEFI flagged: power-on → marker %s", time.Since(start).Round(100*time.Millisecond))
	out := x.boot.Output()
	if !strings.Contains(out, "file=snponly.efi") || !strings.Contains(out, `msg="tftp transfer"`) || !strings.Contains(out, "to=imager") {
		t.Fatalf("bootstrapd log lacks the UEFI chain:\n%s", out)
	}
}
