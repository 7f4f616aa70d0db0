package image

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo that matters here.
type Mount struct {
	Dev        string // major:minor
	MountPoint string
	Source     string // e.g. /dev/sdb1
}

// ParseMountinfo reads /proc/self/mountinfo's format.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var ms []Mount
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent maj:min root mountpoint options [optional...] - fstype source superopts
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		ms = append(ms, Mount{Dev: f[2], MountPoint: f[4], Source: f[sep+2]})
	}
	return ms, sc.Err()
}

// FlashTarget checks that target may be overwritten with the image: a
// regular file, or a whole block device that is neither mounted (nor any
// of its partitions) nor the disk holding /. It returns a description of
// the target for the confirmation question. sysBlock is /sys/class/block,
// where every block device has its directory, partitions included
// (/sys/block lists whole disks only: a partition would pass for a disk).
func FlashTarget(target string, mounts []Mount, sysBlock string) (string, error) {
	st, err := os.Stat(target)
	if os.IsNotExist(err) {
		return "new file " + target, nil
	}
	if err != nil {
		return "", err
	}
	if st.Mode().IsRegular() {
		return fmt.Sprintf("file %s (%d MiB, will be overwritten)", target, st.Size()>>20), nil
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("%s is neither a file nor a block device", target)
	}
	real, err := filepath.EvalSymlinks(target)
	if err != nil {
		return "", err
	}
	name := filepath.Base(real)
	var sys unix.Stat_t
	if err := unix.Stat(real, &sys); err != nil {
		return "", err
	}
	devID := fmt.Sprintf("%d:%d", unix.Major(uint64(sys.Rdev)), unix.Minor(uint64(sys.Rdev)))
	if _, err := os.Stat(filepath.Join(sysBlock, name, "partition")); err == nil {
		return "", fmt.Errorf("%s is a partition: give the whole disk (e.g. %s)", target, strings.TrimRight(strings.TrimSuffix(name, "p"), "0123456789"))
	}
	// The disk and its partitions, by major:minor.
	devs := map[string]string{devID: real}
	parts, _ := filepath.Glob(filepath.Join(sysBlock, name, name+"*", "dev"))
	for _, p := range parts {
		if b, err := os.ReadFile(p); err == nil {
			devs[strings.TrimSpace(string(b))] = "/dev/" + filepath.Base(filepath.Dir(p))
		}
	}
	for _, m := range mounts {
		dev, ok := devs[m.Dev]
		if !ok && m.Source != real && !strings.HasPrefix(m.Source, real) {
			continue
		}
		if dev == "" {
			dev = m.Source
		}
		if m.MountPoint == "/" {
			return "", fmt.Errorf("%s holds / (the running system): refusing to overwrite it", target)
		}
		return "", fmt.Errorf("%s is mounted on %s: unmount it first (umount %s)", dev, m.MountPoint, m.MountPoint)
	}
	size := int64(0)
	if b, err := os.ReadFile(filepath.Join(sysBlock, name, "size")); err == nil {
		fmt.Sscan(string(b), &size)
		size *= 512
	}
	model, _ := os.ReadFile(filepath.Join(sysBlock, name, "device", "model"))
	return fmt.Sprintf("disk %s (%s, %d MiB): EVERYTHING ON IT WILL BE ERASED", target, strings.TrimSpace(string(model)), size>>20), nil
}

// Flash writes the image to target with a progress line on progress, then
// reads it back and compares SHA-256s. It returns the image's hash.
func Flash(imagePath, target string, progress io.Writer) (string, error) {
	src, err := os.Open(imagePath)
	if err != nil {
		return "", err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return "", err
	}
	total := st.Size()
	dst, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE, 0o600) // an image file holds secrets
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", target, err)
	}
	defer dst.Close()
	if fi, _ := dst.Stat(); fi != nil && fi.Mode().IsRegular() {
		if err := dst.Truncate(0); err != nil {
			return "", err
		}
	}
	h := sha256.New()
	buf := make([]byte, 4<<20)
	var done int64
	start := time.Now()
	last := time.Time{}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, err := dst.Write(buf[:n]); err != nil {
				return "", fmt.Errorf("writing %s at %d MiB: %w", target, done>>20, err)
			}
			done += int64(n)
			if time.Since(last) > 200*time.Millisecond || done == total {
				last = time.Now()
				bar(progress, "writing", done, total, start)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", rerr
		}
	}
	if err := dst.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", target, err)
	}
	fmt.Fprintln(progress)
	want := hex.EncodeToString(h.Sum(nil))

	// Read back what the disk holds (past the kernel's buffer cache).
	rd, err := os.Open(target)
	if err != nil {
		return "", err
	}
	defer rd.Close()
	unix.IoctlSetInt(int(rd.Fd()), unix.BLKFLSBUF, 0) // block devices only; harmless elsewhere
	unix.Fadvise(int(rd.Fd()), 0, 0, unix.FADV_DONTNEED)
	h.Reset()
	start = time.Now()
	var read int64
	for read < total {
		n, err := rd.Read(buf[:min(int64(len(buf)), total-read)])
		h.Write(buf[:n])
		read += int64(n)
		if time.Since(last) > 200*time.Millisecond || read == total {
			last = time.Now()
			bar(progress, "verifying", read, total, start)
		}
		if err != nil {
			return "", fmt.Errorf("reading back %s: %w", target, err)
		}
	}
	fmt.Fprintln(progress)
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return "", fmt.Errorf("%s does not hold what was written (sha256 %s, image %s): the card may be failing", target, got, want)
	}
	return want, nil
}

func bar(w io.Writer, what string, done, total int64, start time.Time) {
	const width = 30
	frac := float64(done) / float64(max(total, 1))
	n := int(frac * width)
	rate := float64(done) / (1 << 20) / max(time.Since(start).Seconds(), 0.001)
	fmt.Fprintf(w, "\r%-9s [%s%s] %3.0f%% %5d/%d MiB %6.1f MiB/s", what, strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, done>>20, total>>20, rate)
}
