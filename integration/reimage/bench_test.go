package reimage

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

var mbpsRE = regexp.MustCompile(`MBps=([0-9.]+)`)

func mbps(t *testing.T, out, line string) float64 {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, line) {
			if m := mbpsRE.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				return v
			}
		}
	}
	t.Fatalf("no %q line with MBps:\n%s", line, tail(out, 30))
	return 0
}

// TestSideBySideImager: the imager's write rate (raw and zstd, disk bytes
// per second, hashing included) against a plain HTTP download of the same
// raw image to nowhere over the same virtio link (the limit); and the
// time from power-on of the imager to the installed host's phone-home.
func TestSideBySideImager(t *testing.T) {
	netlab.Bench(t, requirements...)
	raw, zst, sums := golden(t)
	kernel, initrd := imagerBoot(t)
	l := newLAN(t)
	s := startJobServer(t, l)
	key := s.cloudConfig(t, "ceph-1")
	s.files["/images/golden.raw"] = raw
	s.files["/images/golden.raw.zst"] = zst

	s.job = s.jobFor("ceph-1", "/images/golden.raw", "raw", sums["golden.raw"])
	q := l.bootImager(kernel, initrd, blankDisk(t, 2<<30), "gate.bench=download")
	waitExit(t, q, 10*time.Minute)
	netlab.Report(t, "reimage plain HTTP download of the raw image (QEMU TCG, virtio-net)", mbps(t, q.Output(), "bench download"), "MB/s")

	q = l.bootImager(kernel, initrd, blankDisk(t, 2<<30))
	waitExit(t, q, 15*time.Minute)
	netlab.Report(t, "reimage imager write, raw image (QEMU TCG, virtio-blk)", mbps(t, q.Output(), "image written and verified"), "MB/s")

	s.mu.Lock()
	s.job = s.jobFor("ceph-1", "/images/golden.raw.zst", "zstd", sums["golden.raw.zst"])
	s.mu.Unlock()
	disk := blankDisk(t, 2<<30)
	start := time.Now()
	imaged := s.image(t, l, kernel, initrd, disk, raw)
	booted := s.bootDisk(t, l, disk, key, "ceph-1")
	total := time.Since(start)
	netlab.Report(t, "reimage imager power-on to reboot, zstd 1.5 GiB image (TCG)", imaged.Seconds(), "s")
	netlab.Report(t, "reimage installed system boot to ssh + phone-home (TCG)", booted.Seconds(), "s")
	netlab.Report(t, "reimage power-on to phone-home, without PXE (TCG)", total.Seconds(), "s")
}
