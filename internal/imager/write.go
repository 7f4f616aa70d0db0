package imager

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
)

// HeadSize is the start of the disk (partition table, boot code) that is
// zeroed before the image is written and written only after the image's
// hash is verified: a disk whose write failed never boots.
const HeadSize = 1 << 20

// Disk is the target: a block device or, in tests, a file.
type Disk interface {
	io.WriterAt
	Sync() error
}

// DiskSize returns the size of an open block device or file.
func DiskSize(f *os.File) (int64, error) {
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	return n, nil
}

// WriteOptions tune Write.
type WriteOptions struct {
	HTTP *http.Client // nil: http.DefaultClient (no overall timeout: images are big)
	// Idle fails the download when no byte arrived for this long (a
	// network cut); 0 means 30 s.
	Idle time.Duration
	// Progress, if set, is called now and then with the bytes on the disk
	// and the expected total (0 when unknown).
	Progress func(written, total int64)
}

// Result describes a finished write.
type Result struct {
	Written    int64 // bytes on the disk
	Downloaded int64 // bytes received (compressed size for zstd)
	Elapsed    time.Duration
}

var errStall = errors.New("no data received")

// Write streams the job's image to disk (size bytes), hashing the bytes
// received; it fails without writing the disk's head when the image is
// larger than the disk, the download fails or stalls, or the hash
// differs.
func Write(ctx context.Context, job Job, disk Disk, size int64, o WriteOptions) (Result, error) {
	start := time.Now()
	res := Result{}
	hc := o.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	idle := o.Idle
	if idle <= 0 {
		idle = 30 * time.Second
	}
	want, err := hex.DecodeString(job.SHA256)
	if err != nil || len(want) != sha256.Size {
		return res, fmt.Errorf("image %s: sha256 %q is not 64 hex digits", job.URL, job.SHA256)
	}
	if size < HeadSize {
		return res, fmt.Errorf("disk of %d bytes is smaller than %d bytes", size, HeadSize)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(idle, func() { cancel(errStall) })
	defer timer.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.URL, nil)
	if err != nil {
		return res, fmt.Errorf("image %s: %w", job.URL, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return res, fmt.Errorf("image %s: %w", job.URL, stallCause(ctx, err, idle))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("image %s: %s", job.URL, resp.Status)
	}
	h := sha256.New()
	body := &idleReader{r: resp.Body, timer: timer, idle: idle, hash: h}
	// Receive and hash in one goroutine, unpack and write in another.
	done := make(chan struct{})
	defer close(done)
	pre := newPrefetch(body, 8, 1<<20, done)

	var src io.Reader = pre
	total := resp.ContentLength
	if total < 0 {
		total = 0
	}
	switch job.Format {
	case "raw":
		if total > size {
			return res, fmt.Errorf("image %s is %d bytes, larger than the disk (%d bytes)", job.URL, total, size)
		}
	case "zstd":
		br := bufio.NewReaderSize(pre, 1<<16)
		peek, _ := br.Peek(zstd.HeaderMaxSize)
		var zh zstd.Header
		total = 0
		if zh.Decode(peek) == nil && zh.HasFCS {
			total = int64(zh.FrameContentSize)
			if total > size {
				return res, fmt.Errorf("image %s unpacks to %d bytes, larger than the disk (%d bytes)", job.URL, total, size)
			}
		}
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return res, fmt.Errorf("image %s: zstd: %w", job.URL, err)
		}
		defer dec.Close()
		src = dec
	default:
		return res, fmt.Errorf("image %s: format %q is not raw or zstd", job.URL, job.Format)
	}

	// Destroy the old boot sector first: from here on, the disk boots only
	// once the whole image is verified.
	head := make([]byte, HeadSize)
	if _, err := disk.WriteAt(head, 0); err != nil {
		return res, fmt.Errorf("write disk head: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("sync disk: %w", err)
	}

	buf := make([]byte, 1<<20)
	var off int64
	lastReport := time.Now()
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if off+int64(n) > size {
				return res, fmt.Errorf("image %s is larger than the disk (%d bytes)", job.URL, size)
			}
			p := buf[:n]
			if off < HeadSize {
				c := copy(head[off:], p)
				p = p[c:]
				off += int64(c)
			}
			if len(p) > 0 {
				if _, err := disk.WriteAt(p, off); err != nil {
					return res, fmt.Errorf("write disk at offset %d: %w", off, err)
				}
				off += int64(len(p))
			}
			res.Written = off
			if o.Progress != nil && time.Since(lastReport) >= 2*time.Second {
				o.Progress(off, total)
				lastReport = time.Now()
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return res, fmt.Errorf("image %s after %d bytes: %w", job.URL, pre.n, stallCause(ctx, rerr, idle))
		}
	}
	// Hash everything served (a zstd stream may carry bytes after the frame).
	if _, err := io.Copy(io.Discard, pre); err != nil {
		return res, fmt.Errorf("image %s after %d bytes: %w", job.URL, pre.n, stallCause(ctx, err, idle))
	}
	res.Downloaded = pre.n
	if resp.ContentLength >= 0 && pre.n != resp.ContentLength {
		return res, fmt.Errorf("image %s: got %d of %d bytes", job.URL, pre.n, resp.ContentLength)
	}
	if got := h.Sum(nil); hex.EncodeToString(got) != hex.EncodeToString(want) {
		return res, fmt.Errorf("image %s: sha256 mismatch: got %x, want %x", job.URL, got, want)
	}
	if _, err := disk.WriteAt(head[:min(int64(HeadSize), off)], 0); err != nil {
		return res, fmt.Errorf("write disk head: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("sync disk: %w", err)
	}
	if o.Progress != nil {
		o.Progress(off, off)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

func stallCause(ctx context.Context, err error, idle time.Duration) error {
	if errors.Is(context.Cause(ctx), errStall) {
		return fmt.Errorf("no data for %s (network cut?): %w", idle, err)
	}
	return err
}

// idleReader hashes and counts what it reads and pushes back the stall
// timer on every byte received.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
	hash  io.Writer
	n     int64
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
		r.hash.Write(p[:n])
		r.n += int64(n)
	}
	return n, err
}

// Download fetches url to nowhere (no hash, no disk): the plain-download
// baseline of the side-by-side benchmark.
func Download(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

// prefetch reads r ahead in its own goroutine into up to n buffers of
// size bytes, so that receiving (and hashing) overlaps with unpacking and
// writing. Closing done stops the goroutine. n counts the bytes handed
// out by Read.
type prefetch struct {
	ch   chan chunk
	free chan []byte
	done chan struct{}
	cur  chunk
	off  int
	n    int64
}

type chunk struct {
	buf []byte // whole buffer, returned to free when consumed
	len int
	err error
}

func newPrefetch(r io.Reader, n, size int, done chan struct{}) *prefetch {
	p := &prefetch{ch: make(chan chunk, n), free: make(chan []byte, n+1), done: done}
	for i := 0; i < n+1; i++ {
		p.free <- make([]byte, size)
	}
	go func() {
		for {
			var b []byte
			select {
			case b = <-p.free:
			case <-done:
				return
			}
			k, err := 0, error(nil)
			for k < len(b) && err == nil {
				var m int
				m, err = r.Read(b[k:])
				k += m
			}
			select {
			case p.ch <- chunk{buf: b, len: k, err: err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *prefetch) Read(b []byte) (int, error) {
	for p.off == p.cur.len {
		if p.cur.err != nil {
			return 0, p.cur.err
		}
		if p.cur.buf != nil {
			p.free <- p.cur.buf
		}
		p.cur, p.off = <-p.ch, 0
	}
	k := copy(b, p.cur.buf[p.off:p.cur.len])
	p.off += k
	p.n += int64(k)
	return k, nil
}
