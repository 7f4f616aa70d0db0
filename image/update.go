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
}

// Parts are the pieces of an image that an update sends.
type Parts struct {
	Root, Boot     []byte
	BuildTimestamp string // what the new system will report, if known
}

// ReadParts takes the boot partition and the root squashfs (up to its
// used size, padded to 4 KiB) out of an image file built by Build.
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
	p := &Parts{Boot: make([]byte, bl)}
	if _, err := f.ReadAt(p.Boot, bs); err != nil {
		return nil, fmt.Errorf("%s: reading the boot partition: %w", imagePath, err)
	}
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
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(u.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("gokrazy", u.Password)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := u.Client.Do(req)
	if err != nil {
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
		u.Client = &http.Client{Timeout: 10 * time.Minute}
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
