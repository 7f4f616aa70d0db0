package reimage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
)

var requirements = []string{"qemu-system-x86_64", "dnsmasq", "debootstrap", "extlinux", "sfdisk", "mkfs.ext4", "zstd", "debugfs", "ssh", "ssh-keygen"}

// seedFile reads the cloud-init seed the imager wrote, with debugfs (an
// independent ext4 reader) on the disk's first partition.
func seedFile(t *testing.T, disk string) (string, error) {
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

func sameHead(t *testing.T, disk, raw string, n int) bool {
	a := make([]byte, n)
	b := make([]byte, n)
	fa, _ := os.Open(disk)
	fb, _ := os.Open(raw)
	defer fa.Close()
	defer fb.Close()
	fa.ReadAt(a, 0)
	fb.ReadAt(b, 0)
	return string(a) == string(b)
}

// TestIntegrationImagerWritesDisk boots the imager (kernel.amd64 + our
// initramfs) on a blank disk against a server speaking bootstrapd's side
// of the contract, then boots the written disk: Debian comes up, applies
// its NoCloud data (hostname, admin key: SSH works) and phones home.
func TestIntegrationImagerWritesDisk(t *testing.T) {
	netlab.Require(t, requirements...)
	_, zst, sums := golden(t)
	kernel, initrd := imagerBoot(t)
	l := newLAN(t)
	s := startJobServer(t, l)
	key := s.cloudConfig(t, "ceph-1")
	s.files["/images/golden.raw.zst"] = zst
	s.job = s.jobFor("ceph-1", "/images/golden.raw.zst", "zstd", sums["golden.raw.zst"])

	disk := blankDisk(t, 2<<30)
	start := time.Now()
	imaged := s.image(t, l, kernel, initrd, disk, strings.TrimSuffix(zst, ".zst"))
	t.Logf("imaged in %s", imaged)
	booted := s.bootDisk(t, l, disk, key, "ceph-1")
	t.Logf("disk boot → ssh + phone-home in %s; power-on → phone-home %s", booted, time.Since(start))
}

// cloudConfig sets NoCloud data for host (admin user with a fresh key,
// phone_home to the server) and returns the private key's path.
func (s *jobServer) cloudConfig(t *testing.T, host string) string {
	key := filepath.Join(t.TempDir(), "admin")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nocloud["meta-data"] = "instance-id: " + host + "-1\nlocal-hostname: " + host + "\n"
	s.nocloud["user-data"] = "#cloud-config\nhostname: " + host + "\npreserve_hostname: false\nusers:\n  - name: admin\n    shell: /bin/bash\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [\"" + strings.TrimSpace(string(pub)) + "\"]\n" +
		"phone_home:\n  url: " + base() + "/phone-home/" + host + "\n  post: [hostname, instance_id]\n  tries: 10\n"
	return key
}

func (s *jobServer) jobFor(host, path, format, sha string) map[string]any {
	return map[string]any{"host": host, "disk": "", "url": base() + path, "format": format,
		"sha256": sha, "seed_url": base() + "/nocloud/" + host + "/", "instance_id": host + "-1"}
}

// image boots the imager on disk and checks the result against the raw
// golden image; it returns QEMU start → imager's reboot.
func (s *jobServer) image(t *testing.T, l *lan, kernel, initrd, disk, raw string) time.Duration {
	start := time.Now()
	q := l.bootImager(kernel, initrd, disk)
	waitExit(t, q, 15*time.Minute)
	imaged := time.Since(start)
	d, ok := s.lastDone()
	if !ok || !d.OK {
		t.Fatalf("imager did not report success (%+v):\n%s", d, tail(q.Output(), 60))
	}
	if !strings.Contains(q.Output(), "imager done; rebooting") {
		t.Fatalf("imager did not reboot:\n%s", tail(q.Output(), 40))
	}
	s.mu.Lock()
	np := len(s.progress)
	s.mu.Unlock()
	if np == 0 {
		t.Errorf("no progress reported")
	}
	seed, err := seedFile(t, disk)
	if err != nil {
		t.Fatal(err)
	}
	seedURL := s.job["seed_url"].(string)
	if !strings.Contains(seed, "seedfrom: \""+seedURL+"\"") || !strings.Contains(seed, "datasource_list: [NoCloud]") {
		t.Fatalf("seed:\n%s", seed)
	}
	if !sameHead(t, disk, raw, 1<<20) {
		t.Fatalf("the disk's first MiB differs from the golden image")
	}
	return imaged
}

// bootDisk boots the written disk (BIOS, disk first) until SSH with the
// admin key works, the hostname is right and the host phoned home.
func (s *jobServer) bootDisk(t *testing.T, l *lan, disk, key, host string) time.Duration {
	bootStart := time.Now()
	vm := l.sw.Start("qemu-disk", nil, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
		"-drive", "file="+disk+",format=raw,if=virtio", "-boot", "c",
		"-netdev", "tap,id=n0,ifname="+l.tap+",script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac="+vmMAC, "-device", "virtio-rng-pci")
	defer vm.Kill()
	s.waitInstalled(t, l, vm, key, host)
	return time.Since(bootStart)
}

// waitInstalled waits until the installed system in vm answers SSH with
// the admin key, has the right hostname and phoned home; it returns how
// long that took.
func (s *jobServer) waitInstalled(t *testing.T, l *lan, vm *netlab.Proc, key, host string) time.Duration {
	start := time.Now()
	var hostname string
	err := netlab.Eventually(10*time.Minute, 5*time.Second, func() error {
		select {
		case <-vm.Done():
			return fmt.Errorf("VM ended")
		default:
		}
		out, err := l.sw.Output("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "admin@"+vmAddr, "hostname")
		hostname = strings.TrimSpace(out)
		return err
	})
	if err != nil {
		t.Fatalf("ssh admin@%s: %v\n%s", vmAddr, err, tail(vm.Output(), 60))
	}
	if hostname != host {
		t.Fatalf("hostname %q, want %s", hostname, host)
	}
	err = netlab.Eventually(5*time.Minute, 2*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, h := range s.phoned {
			if h == host {
				return nil
			}
		}
		return fmt.Errorf("no phone-home from %s", host)
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(vm.Output(), 40))
	}
	return time.Since(start)
}

// TestIntegrationImagerFailures: each failure is reported with its reason,
// the disk is not made bootable, and the imager powers off instead of
// rebooting into it.
func TestIntegrationImagerFailures(t *testing.T) {
	netlab.Require(t, requirements...)
	raw, zst, sums := golden(t)
	kernel, initrd := imagerBoot(t)
	l := newLAN(t)
	s := startJobServer(t, l)
	s.files["/images/golden.raw"] = raw
	s.files["/images/golden.raw.zst"] = zst

	job := func(path, format, sha string) map[string]any {
		return map[string]any{"host": "ceph-1", "url": base() + path, "format": format, "sha256": sha,
			"seed_url": base() + "/nocloud/ceph-1/", "instance_id": "ceph-1-2"}
	}
	tests := []struct {
		name     string
		job      map[string]any
		diskSize int64
		cut      bool
		want     string
	}{
		{"image URL 404", job("/images/missing.raw", "raw", sums["golden.raw"]), 2 << 30, false, "404 Not Found"},
		{"disk smaller than the image", job("/images/golden.raw", "raw", sums["golden.raw"]), 1 << 30, false, "larger than the disk"},
		{"wrong sha256", job("/images/golden.raw.zst", "zstd", strings.Repeat("0", 64)), 2 << 30, false, "sha256 mismatch"},
		{"network cut mid-way", job("/images/golden.raw.zst", "zstd", sums["golden.raw.zst"]), 2 << 30, true, "no data for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.mu.Lock()
			s.job, s.done, s.cut, s.cutOnce = tt.job, nil, nil, &sync.Once{}
			if tt.cut {
				s.cut = func() {
					l.sw.Run("ip", "link", "set", l.tap, "down")
					t.Logf("link cut")
					time.AfterFunc(45*time.Second, func() { l.sw.Run("ip", "link", "set", l.tap, "up"); t.Logf("link back") })
				}
			}
			s.mu.Unlock()
			disk := blankDisk(t, tt.diskSize)
			q := l.bootImager(kernel, initrd, disk)
			waitExit(t, q, 10*time.Minute)
			l.sw.Run("ip", "link", "set", l.tap, "up")
			d, ok := s.lastDone()
			if !ok || d.OK || !strings.Contains(d.Error, tt.want) {
				t.Fatalf("done = %+v (reported: %v), want a failure with %q:\n%s", d, ok, tt.want, tail(q.Output(), 40))
			}
			if strings.Contains(q.Output(), "rebooting") || !strings.Contains(q.Output(), "powering off") {
				t.Fatalf("imager did not power off after the failure:\n%s", tail(q.Output(), 20))
			}
			if !sameHead(t, disk, blankDisk(t, 1<<20), 512) {
				t.Fatalf("the failed disk has a boot sector")
			}
		})
	}
}
