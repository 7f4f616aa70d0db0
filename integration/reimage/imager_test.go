package reimage

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

var requirements = []string{"qemu-system-x86_64", "dnsmasq", "debootstrap", "extlinux", "sfdisk", "mkfs.ext4", "zstd", "debugfs", "ssh", "ssh-keygen"}

// seedFile reads the cloud-init seed the imager wrote, with debugfs (an
// independent ext4 reader) on the disk's first partition.
func seedFile(disk string) (string, error) {
	out, err := exec.Command("debugfs", "-R", "cat /etc/cloud/cloud.cfg.d/99-gate.cfg", disk+"?offset=1048576").CombinedOutput()
	s := string(out)
	if i := strings.Index(s, "\n"); strings.HasPrefix(s, "debugfs ") && i >= 0 {
		s = s[i+1:]
	}
	if err != nil || !strings.Contains(s, "datasource_list") {
		return s, fmt.Errorf("debugfs cat seed: %v: %s", err, out)
	}
	return s, nil
}

// TestIntegrationImagerWritesDisk: `gate reimage ceph-1`, then the
// imager (kernel.amd64 + our initramfs, booted directly) takes its job
// from bootstrapd and writes the blank disk; the written disk boots,
// Debian applies bootstrapd's NoCloud data (hostname, the role's admin
// user: SSH works) and phones home; `gate hosts` shows it installed.
func TestIntegrationImagerWritesDisk(t *testing.T) {
	netlab.Require(t, requirements...)
	g := golden(t)
	l := newLAN(t, g)
	h := hostNamed(t, "ceph-1")

	start := time.Now()
	instance := l.reimage(t, h.name)
	disk := blankDisk(t, 2<<30)
	imaged := l.image(t, h, disk, g.Raw, instance)
	t.Logf("imaged in %s", imaged.Round(time.Second))
	booted := l.bootDisk(t, h, disk, start)
	t.Logf("disk boot → ssh + phone-home in %s; flag → phone-home %s", booted.Round(time.Second), time.Since(start).Round(time.Second))
}

// image boots the imager as h on disk (h flagged) and checks the result:
// it reported success and rebooted, `gate hosts` shows the disk written,
// the disk holds the raw golden image's head and the seed pointing at
// bootstrapd. It returns QEMU start → the imager's reboot.
func (l *lan) image(t *testing.T, h labHost, disk, raw, instance string) time.Duration {
	t.Helper()
	start := time.Now()
	q := l.bootImager(h, disk)
	waitExit(t, q, 15*time.Minute)
	imaged := time.Since(start)
	if !strings.Contains(q.Output(), "imager done; rebooting") {
		t.Fatalf("imager did not finish:\n%s\n--- bootstrapd:\n%s", site.Tail(q.Output(), 60), site.Tail(l.boot.Output(), 20))
	}
	r, out := l.row(t, h.name)
	if r["STATE"] != "written" || r["LAST RESULT"] != "written" || !strings.HasPrefix(r["PROGRESS"], "100% of ") {
		t.Fatalf("after the imager, gate hosts shows:\n%s", out)
	}
	seed, err := seedFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(seed, "seedfrom: \""+base()+"/nocloud/\"") || !strings.Contains(seed, "datasource_list: [NoCloud]") ||
		!strings.Contains(seed, "(instance "+instance+")") {
		t.Fatalf("seed:\n%s", seed)
	}
	if !bytes.Equal(head(t, disk, 1<<20), head(t, raw, 1<<20)) {
		t.Fatalf("the disk's first MiB differs from the golden image")
	}
	return imaged
}

// bootDisk boots the written disk (BIOS, disk first) until the installed
// system is up and phoned home (waitInstalled).
func (l *lan) bootDisk(t *testing.T, h labHost, disk string, since time.Time) time.Duration {
	t.Helper()
	bootStart := time.Now()
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
		"-drive", "file=" + disk + ",format=raw,if=virtio", "-boot", "c"}
	vm := l.sw.Start("qemu-disk-"+h.name, nil, append(args, l.qemuNet(h)...)...)
	defer vm.Kill()
	l.waitInstalled(t, vm, h, since)
	return time.Since(bootStart)
}

// waitInstalled waits until the installed system in vm answers SSH with
// the role's admin key, has its host name from bootstrapd's NoCloud
// data, and `gate hosts` shows its phone-home (installed, no longer ago
// than since).
func (l *lan) waitInstalled(t *testing.T, vm *netlab.Proc, h labHost, since time.Time) {
	t.Helper()
	var hostname string
	err := netlab.Eventually(10*time.Minute, 5*time.Second, func() error {
		select {
		case <-vm.Done():
			return fmt.Errorf("VM ended")
		default:
		}
		out, err := l.sw.Output("ssh", "-i", l.key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "admin@"+h.ip, "hostname")
		hostname = strings.TrimSpace(out)
		return err
	})
	if err != nil {
		t.Fatalf("ssh admin@%s: %v\n%s\n--- bootstrapd:\n%s", h.ip, err, site.Tail(vm.Output(), 60), site.Tail(l.boot.Output(), 20))
	}
	if hostname != h.name {
		t.Fatalf("hostname %q, want %s", hostname, h.name)
	}
	r := l.waitInstalledRow(t, h.name, since, 5*time.Minute)
	t.Logf("gate hosts: %s %s, %s", h.name, r["STATE"], r["LAST RESULT"])
}

var reportedFailure = regexp.MustCompile(`msg=reported .*ok=false`)

var progressRE = regexp.MustCompile(`^(\d+)% of \d+ MiB$`)

// TestIntegrationImagerFailures: each failure is reported to bootstrapd
// with its reason, the disk is not made bootable, the imager powers off
// instead of rebooting into it, and `gate hosts` shows the host still
// flagged with the reason. An imager at an address the box gave instead
// of the host's reservation is refused its job (it cannot report): the
// reason is bootstrapd's own.
func TestIntegrationImagerFailures(t *testing.T) {
	netlab.Require(t, requirements...)
	g := golden(t)
	l := newLAN(t, g)

	tests := []struct {
		host     string
		diskSize int64
		cut      bool
		want     string
		reports  bool // the imager reports the failure itself
	}{
		{"nf-missing", 2 << 30, false, "404 Not Found", true},
		{"nf-small", 1 << 30, false, "larger than the disk", true},
		{"nf-badsum", 2 << 30, false, "sha256 mismatch", true},
		{"nf-cut", 2 << 30, true, "no data for", true},
		{"nf-nolease", 2 << 30, false, "not nf-nolease's 10.77.0.25: reserve 10.77.0.25 for 52:54:00:6a:00:25", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			h := hostNamed(t, tt.host)
			l.reimage(t, h.name)
			disk := blankDisk(t, tt.diskSize)
			q := l.bootImager(h, disk)
			if tt.cut {
				l.cutMidway(t, h, q)
			}
			waitExit(t, q, 10*time.Minute)
			l.sw.Run("ip", "link", "set", l.tap, "up")
			if strings.Contains(q.Output(), "rebooting") || !strings.Contains(q.Output(), "powering off") {
				t.Fatalf("imager did not power off after the failure:\n%s", site.Tail(q.Output(), 20))
			}
			if reported := reportedFailure.MatchString(q.Output()); reported != tt.reports {
				t.Fatalf("imager reported the failure: %v, want %v:\n%s", reported, tt.reports, site.Tail(q.Output(), 20))
			}
			if !bytes.Equal(head(t, disk, 512), make([]byte, 512)) {
				t.Fatalf("the failed disk has a boot sector")
			}
			r, out := l.row(t, h.name)
			if r["STATE"] != "flagged" || !strings.HasPrefix(r["LAST RESULT"], "failed: ") || !strings.Contains(r["LAST RESULT"], tt.want) {
				t.Fatalf("gate hosts after the failure (want %s flagged, failed: ...%s...):\n%s", h.name, tt.want, out)
			}
			t.Logf("gate hosts: %s %s, %s", h.name, r["STATE"], r["LAST RESULT"])
		})
	}
}

// cutMidway waits until `gate hosts` shows the imager past a tenth of
// the image, then cuts the machine's link for 45 s (longer than the
// imager's 30 s without data).
func (l *lan) cutMidway(t *testing.T, h labHost, q *netlab.Proc) {
	t.Helper()
	var r hostsRow
	err := netlab.Eventually(10*time.Minute, time.Second, func() error {
		select {
		case <-q.Done():
			return fmt.Errorf("imager ended")
		default:
		}
		r, _ = l.row(t, h.name)
		if m := progressRE.FindStringSubmatch(r["PROGRESS"]); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 10 && n < 90 {
				return nil
			}
		}
		return fmt.Errorf("progress %q", r["PROGRESS"])
	})
	if err != nil {
		t.Fatalf("waiting for the download to be under way: %v\n%s", err, site.Tail(q.Output(), 30))
	}
	l.sw.MustRun("ip", "link", "set", l.tap, "down")
	t.Logf("link cut at %s", r["PROGRESS"])
	time.AfterFunc(45*time.Second, func() { l.sw.Run("ip", "link", "set", l.tap, "up") })
}
