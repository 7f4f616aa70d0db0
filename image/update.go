package image

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Updater pushes an image to a running gate through gokrazy's own update
// endpoints, in gok's order: root (to the inactive root partition), boot,
// switch, reboot. Each upload is checked against the SHA-256 gokrazy
// reports for what it received; on any mismatch or error nothing is
// switched, so the running system stays as it was.
type Updater struct {
	BaseURL  string // e.g. http://192.168.1.2:80
	Password string
	Client   *http.Client
	// Log receives one line per step.
	Log io.Writer
	// Pause is the wait before a boot upload's second attempt, growing
	// by as much each time (default 1 s).
	Pause time.Duration
	// Stall cuts a request that made no progress this long: no byte of
	// the upload taken, or no answer after the last one (default 2m). A
	// slow link (a Wi-Fi bridge, a VPN) takes as long as it needs.
	Stall time.Duration
}

// Parts are the pieces of an image that an update sends.
type Parts struct {
	Root, Boot     []byte
	BuildTimestamp string // what the new system will report, if known
}

// ReadParts takes the boot partition (up to the end of its last allocated
// cluster, see fatUsed) and the root squashfs (up to its used size, padded
// to 4 KiB) out of an image file built by Build.
func ReadParts(imagePath string) (*Parts, error) {
	f, err := os.Open(imagePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mbr [512]byte
	if _, err := f.ReadAt(mbr[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading the partition table: %w", imagePath, err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, fmt.Errorf("%s: no MBR partition table (not a gate image?)", imagePath)
	}
	part := func(i int) (start, size int64) {
		e := mbr[446+16*i:]
		return int64(binary.LittleEndian.Uint32(e[8:12])) * sector, int64(binary.LittleEndian.Uint32(e[12:16])) * sector
	}
	bs, bl := part(0)
	rs, rl := part(1)
	if bl == 0 || rl == 0 {
		return nil, fmt.Errorf("%s: boot or root partition missing", imagePath)
	}
	boot := make([]byte, bl)
	if _, err := f.ReadAt(boot, bs); err != nil {
		return nil, fmt.Errorf("%s: reading the boot partition: %w", imagePath, err)
	}
	bu, err := fatUsed(boot)
	if err != nil {
		return nil, fmt.Errorf("%s: boot partition: %w", imagePath, err)
	}
	p := &Parts{Boot: boot[:bu]}
	var sb [96]byte
	if _, err := f.ReadAt(sb[:], rs); err != nil {
		return nil, err
	}
	if string(sb[:4]) != "hsqs" {
		return nil, fmt.Errorf("%s: root partition holds no squashfs", imagePath)
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:48]))
	used = (used + 4095) &^ 4095
	if used > rl {
		return nil, fmt.Errorf("%s: squashfs larger than its partition", imagePath)
	}
	p.Root = make([]byte, used)
	if _, err := f.ReadAt(p.Root, rs); err != nil {
		return nil, fmt.Errorf("%s: reading the root partition: %w", imagePath, err)
	}
	return p, nil
}

func (u *Updater) logf(format string, args ...any) {
	if u.Log != nil {
		fmt.Fprintf(u.Log, format+"\n", args...)
	}
}

func (u *Updater) do(ctx context.Context, method, path string, body []byte, accept string) ([]byte, error) {
	stall := cmp.Or(u.Stall, 2*time.Minute)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr := &progressReader{r: bytes.NewReader(body)}
	pr.touch()
	start := pr.last.Load()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(min(stall/4, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				// Once the whole body is taken, what the socket buffers
				// still hold drains no slower than the rest did: the
				// answer may take that long again.
				limit := stall
				if pr.n.Load() == int64(len(body)) {
					limit += time.Duration(pr.last.Load() - start)
				}
				if idle := pr.idle(); idle >= limit {
					cancel(fmt.Errorf("no progress for %s (%d of %d bytes sent)", idle.Round(100*time.Millisecond), pr.n.Load(), len(body)))
					return
				}
			}
		}
	}()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(u.BaseURL, "/")+path, pr)
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	req.SetBasicAuth("gokrazy", u.Password)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := u.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%s %s: the gate refused the password (gate.password)", method, path)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// Status is what gokrazy's status page says of the running system.
type Status struct {
	BuildTimestamp string
}

// Status asks the gate for its running build.
func (u *Updater) Status(ctx context.Context) (Status, error) {
	var st Status
	b, err := u.do(ctx, http.MethodGet, "/", nil, "application/json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("status page: %w", err)
	}
	return st, nil
}

// upload PUTs data and checks the hash gokrazy answers.
func (u *Updater) upload(ctx context.Context, path string, data []byte) error {
	want := sha256.Sum256(data)
	start := time.Now()
	b, err := u.do(ctx, http.MethodPut, path, data, "")
	if err != nil {
		return err
	}
	got := strings.TrimSpace(string(b))
	if got != hex.EncodeToString(want[:]) {
		return fmt.Errorf("%s: the gate received other bytes than were sent (sha256 %s, sent %x): upload corrupted, nothing switched", path, got, want)
	}
	u.logf("%-13s %6.1f MiB in %s, sha256 verified", path, float64(len(data))/(1<<20), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// BootAttempts is how many times a boot partition upload is tried.
const BootAttempts = 5

// uploadBoot writes the boot partition. gokrazy writes it in place (there
// is one), so an upload that arrives corrupted or cut leaves a boot
// partition the next power cycle may not boot from: it is sent again
// until the gate reports the image's hash, or the attempts run out (then
// the error says so; nothing is switched and the running system is
// untouched, but the gate must not be power-cycled before an update
// succeeds).
func (u *Updater) uploadBoot(ctx context.Context, boot []byte) error {
	var err error
	for i := 1; i <= BootAttempts; i++ {
		if err = u.upload(ctx, "/update/boot", boot); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		u.logf("boot partition upload %d of %d failed: %v", i, BootAttempts, err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(i) * cmp.Or(u.Pause, time.Second)):
		}
	}
	return fmt.Errorf("%w\nTHE GATE'S BOOT PARTITION MAY BE DAMAGED: do not power it off; run gate update again (it re-sends the boot partition; the running system was not switched)", err)
}

// Update pushes p and reboots the gate into it, then waits (up to wait)
// until it reports the new build timestamp. A failed upload leaves the
// running system as it was.
func (u *Updater) Update(ctx context.Context, p *Parts, wait time.Duration) error {
	if u.Client == nil {
		u.Client = &http.Client{} // bounded by Stall, not by the total
	}
	before, err := u.Status(ctx)
	if err != nil {
		return fmt.Errorf("reaching the gate: %w", err)
	}
	u.logf("running build %s", before.BuildTimestamp)
	feat, err := u.do(ctx, http.MethodGet, "/update/features", nil, "")
	if err != nil {
		return err
	}
	if !strings.Contains(string(feat), "partuuid") {
		return fmt.Errorf("the gate's gokrazy lacks the partuuid update feature (features %q)", feat)
	}
	if err := u.upload(ctx, "/update/root", p.Root); err != nil {
		return err
	}
	if err := u.uploadBoot(ctx, p.Boot); err != nil {
		return err
	}
	if _, err := u.do(ctx, http.MethodPost, "/update/switch", nil, ""); err != nil {
		return err
	}
	u.logf("switched to the updated root partition; rebooting")
	if _, err := u.do(ctx, http.MethodPost, "/reboot", nil, ""); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := u.Status(sctx)
		cancel()
		if err != nil || st.BuildTimestamp == before.BuildTimestamp {
			continue
		}
		if p.BuildTimestamp != "" && st.BuildTimestamp != p.BuildTimestamp {
			return fmt.Errorf("the gate came back with build %s, not %s", st.BuildTimestamp, p.BuildTimestamp)
		}
		u.logf("the gate runs build %s", st.BuildTimestamp)
		return nil
	}
	return fmt.Errorf("the gate did not come back with a new build within %s", wait)
}

// progressReader is a request body that remembers when it last moved.
type progressReader struct {
	r    io.Reader
	n    atomic.Int64
	last atomic.Int64 // unix nanoseconds
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n.Add(int64(n))
		p.touch()
	}
	return n, err
}

func (p *progressReader) touch() { p.last.Store(time.Now().UnixNano()) }

func (p *progressReader) idle() time.Duration {
	return time.Since(time.Unix(0, p.last.Load()))
}

// fatUsed returns how many leading bytes of the FAT16 file system boot
// hold all of it that is in use: the reserved sectors, the FAT, the root
// directory and every cluster up to the last one the FAT marks allocated.
// gokrazy writes a boot upload from the partition's start and leaves the
// rest as it was: what stays behind the prefix lies in clusters the new
// FAT marks free, so the partition is the new file system. An update
// then sends the files, not the partition's 100 MiB.
func fatUsed(boot []byte) (int64, error) {
	if len(boot) < 512 || boot[510] != 0x55 || boot[511] != 0xaa {
		return 0, fmt.Errorf("no FAT boot sector")
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(boot[o:])) }
	bps, spc := le16(11), int64(boot[13])
	reserved, nfats, rootEntries := le16(14), int64(boot[16]), le16(17)
	total, fatSectors := le16(19), le16(22)
	if total == 0 {
		total = int64(binary.LittleEndian.Uint32(boot[32:]))
	}
	if bps < 512 || bps&(bps-1) != 0 || spc == 0 || nfats == 0 || fatSectors == 0 || reserved == 0 {
		return 0, fmt.Errorf("FAT boot sector with an impossible layout (%d bytes a sector, %d a cluster, %d FATs of %d sectors, %d reserved)", bps, spc, nfats, fatSectors, reserved)
	}
	rootSectors := (rootEntries*32 + bps - 1) / bps
	data := reserved + nfats*fatSectors + rootSectors // first data sector
	if total <= data || total*bps > int64(len(boot)) {
		return 0, fmt.Errorf("FAT file system of %d sectors does not fit its partition of %d bytes", total, len(boot))
	}
	clusters := (total - data) / spc
	if clusters < 4085 || clusters >= 65525 {
		return 0, fmt.Errorf("not FAT16: %d clusters", clusters)
	}
	if (clusters+2)*2 > fatSectors*bps {
		return 0, fmt.Errorf("FAT of %d sectors too small for %d clusters", fatSectors, clusters)
	}
	fat := boot[reserved*bps:]
	last := int64(1) // the last allocated cluster; data starts at cluster 2
	for c := clusters + 1; c >= 2; c-- {
		if binary.LittleEndian.Uint16(fat[2*c:]) != 0 {
			last = c
			break
		}
	}
	return (data + (last-1)*spc) * bps, nil
}
