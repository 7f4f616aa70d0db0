package reimage

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
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
	t.Fatalf("no %q line with MBps:\n%s", line, site.Tail(out, 30))
	return 0
}

// TestSideBySideImager: the imager's write rate (raw and zstd, disk bytes
// per second, hashing included) against a plain HTTP download of the same
// raw image from bootstrapd to nowhere over the same virtio link (the
// limit); and the time from power-on of the imager to the installed
// host's phone-home, all against the real bootstrapd.
func TestSideBySideImager(t *testing.T) {
	netlab.Bench(t, requirements...)
	g := golden(t)
	l := newLAN(t, g)

	raw := hostNamed(t, "ceph-2") // role raw
	l.reimage(t, raw.name)
	q := l.bootImager(raw, blankDisk(t, 2<<30), "gate.bench=download")
	waitExit(t, q, 10*time.Minute)
	netlab.Report(t, "reimage_plain_http_download_raw", mbps(t, q.Output(), "bench download"), "MB/s")

	q = l.bootImager(raw, blankDisk(t, 2<<30))
	waitExit(t, q, 15*time.Minute)
	netlab.Report(t, "reimage_imager_write_raw", mbps(t, q.Output(), "image written and verified"), "MB/s")

	z := hostNamed(t, "ceph-1") // role zstd
	start := time.Now()
	instance := l.reimage(t, z.name)
	disk := blankDisk(t, 2<<30)
	imaged := l.image(t, z, disk, g.Raw, instance)
	booted := l.bootDisk(t, z, disk, start)
	total := time.Since(start)
	netlab.Report(t, "reimage_imager_poweron_to_reboot_zstd", imaged.Seconds(), "s")
	netlab.Report(t, "reimage_installed_boot_to_phone_home", booted.Seconds(), "s")
	netlab.Report(t, "reimage_poweron_to_phone_home_without_pxe", total.Seconds(), "s")
}
