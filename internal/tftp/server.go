package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves files read-only from Root.
type Server struct {
	// Root is the directory served; names resolving outside it (.., symlinks
	// out) are refused.
	Root string
	// Log receives one line per transfer; nil discards.
	Log *slog.Logger
	// Retries is how many times a window is resent without an ACK before the
	// transfer is abandoned (default 5).
	Retries int
	// Timeout is the retransmit timeout when the client did not ask for
	// one (default 1s).
	Timeout time.Duration
	// MaxTransfers bounds concurrent transfers (default 64).
	MaxTransfers int
	// MaxPerSource bounds concurrent transfers per client address
	// (default 4): one host cannot take every slot.
	MaxPerSource int
	// MaxTimeout is the longest retransmit timeout a client may ask for
	// with the timeout option (default 10s); a longer one is declined
	// (left out of the OACK, RFC 2347) and Timeout applies.
	MaxTimeout time.Duration
	// MaxDuration bounds a whole transfer (default 5m): a client that
	// ACKs just often enough to keep it alive is cut off with an ERROR.
	MaxDuration time.Duration
	// Allow, if set, decides whether a client may read at all.
	Allow func(addr *net.UDPAddr) bool

	// Transfers counts finished transfers (ok or not).
	Transfers, Failures atomic.Int64

	poll pollToken // see udpSock
}

// PolledWaits counts the waits for an ACK that polled the socket before
// sleeping (a fast client's: see udpSock), and those the ACK came within.
func (s *Server) PolledWaits() (polled, caught int64) {
	return s.poll.polls.Load(), s.poll.polled.Load()
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Serve answers requests arriving on conn until ctx is done. Each
// transfer runs from its own socket (a new TID) on conn's IP.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn) error {
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return fmt.Errorf("tftp: open root %s: %w", s.Root, err)
	}
	defer root.Close()
	maxT := s.MaxTransfers
	if maxT <= 0 {
		maxT = 64
	}
	sem := make(chan struct{}, maxT)
	perSource := s.MaxPerSource
	if perSource <= 0 {
		perSource = 4
	}
	var mu sync.Mutex
	bySource := map[netip.Addr]int{}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	local := conn.LocalAddr().(*net.UDPAddr)
	buf := make([]byte, 1500)
	for {
		n, addr, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: read: %w", err)
		}
		req, err := ParseRequest(buf[:n])
		if err != nil {
			s.log().Info("tftp bad request", "client", addr, "err", err)
			conn.WriteToUDP(errorPacket(errIllegalOp, err.Error()), addr)
			continue
		}
		if req.Op == opWRQ {
			conn.WriteToUDP(errorPacket(errAccess, "read-only server"), addr)
			continue
		}
		if s.Allow != nil && !s.Allow(addr) {
			conn.WriteToUDP(errorPacket(errAccess, "not allowed"), addr)
			continue
		}
		src := addr.AddrPort().Addr().Unmap()
		mu.Lock()
		full := bySource[src] >= perSource
		if !full {
			bySource[src]++
		}
		mu.Unlock()
		if full {
			conn.WriteToUDP(errorPacket(errUndefined, "too many transfers from this address"), addr)
			continue
		}
		release := func() {
			mu.Lock()
			if bySource[src]--; bySource[src] <= 0 {
				delete(bySource, src)
			}
			mu.Unlock()
		}
		select {
		case sem <- struct{}{}:
		default:
			release()
			conn.WriteToUDP(errorPacket(errUndefined, "server busy"), addr)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer release()
			err := s.transfer(ctx, root, local.IP, addr, req)
			s.Transfers.Add(1)
			if err != nil {
				s.Failures.Add(1)
				s.log().Info("tftp transfer failed", "client", addr, "file", req.Filename, "err", err)
			} else {
				s.log().Info("tftp transfer", "client", addr, "file", req.Filename)
			}
		}()
	}
}

// open resolves name inside root: a leading slash is the root itself;
// traversal outside is refused by os.Root.
func open(root *os.Root, name string) (*os.File, int64, error) {
	name = strings.TrimLeft(strings.ReplaceAll(name, "\\", "/"), "/")
	if name == "" {
		return nil, 0, fs.ErrNotExist
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fs.ErrNotExist
	}
	return f, st.Size(), nil
}

func (s *Server) transfer(ctx context.Context, root *os.Root, ip net.IP, peer *net.UDPAddr, req *Request) error {
	to := peer.AddrPort()
	c, err := dialUDP(ip, to, &s.poll)
	if err != nil {
		return err
	}
	defer c.Close()
	f, size, err := open(root, req.Filename)
	if err != nil {
		code, msg := uint16(errNotFound), "file not found"
		if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "escapes") {
			code, msg = errAccess, "access violation"
		}
		c.send(errorPacket(code, msg))
		return fmt.Errorf("open %q: %w", req.Filename, err)
	}
	defer f.Close()
	var src io.ReaderAt = f
	if req.Mode == "netascii" {
		b, err := netascii(f, size)
		if err != nil {
			c.send(errorPacket(errUndefined, err.Error()))
			return fmt.Errorf("%q: %w", req.Filename, err)
		}
		src, size = bytes.NewReader(b), int64(len(b))
	}
	maxTimeout := s.MaxTimeout
	if maxTimeout <= 0 {
		maxTimeout = 10 * time.Second
	}
	n := negotiate(req, size, int(maxTimeout/time.Second))
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	own := timeout
	if n.timeoutSec > 0 {
		timeout = time.Duration(n.timeoutSec) * time.Second
	}
	retries := s.Retries
	if retries <= 0 {
		retries = 5
	}
	maxDur := s.MaxDuration
	if maxDur <= 0 {
		maxDur = 5 * time.Minute
	}
	stop := context.AfterFunc(ctx, c.shutdown)
	defer stop()
	t := &xfer{ctx: ctx, c: c, f: src, size: size, n: n, timeout: timeout, own: own, retries: retries,
		end: time.Now().Add(maxDur), maxDur: maxDur, buf: make([]byte, 1500)}
	if len(n.oack) > 0 {
		if err := t.sendOACK(); err != nil {
			return err
		}
	}
	return t.run()
}

type xfer struct {
	ctx     context.Context
	c       *udpSock
	f       io.ReaderAt
	size    int64
	n       negotiated
	timeout time.Duration // the retransmit timeout (the client's option or own)
	own     time.Duration // the server's: used until the client first answers
	retries int
	end     time.Time // the transfer's deadline
	maxDur  time.Duration
	proven  bool // the client answered once: its address is not spoofed
	buf     []byte
}

// rto is the retransmit timeout: the server's own until the client has
// answered once, so that requests from spoofed addresses, which nobody
// answers, free their slot after (Retries+1) × Timeout whatever timeout
// they asked for.
func (t *xfer) rto() time.Duration {
	if !t.proven {
		return min(t.timeout, t.own)
	}
	return t.timeout
}

// errTooLong ends a transfer past its deadline.
var errTooLong = errors.New("transfer deadline passed")

// recv reads the next packet from the peer's TID (the socket answers
// strangers itself). Past the transfer's deadline it
// sends the client an ERROR and returns errTooLong; when the server stops,
// ctx's error.
func (t *xfer) recv(deadline time.Time) ([]byte, error) {
	if deadline.After(t.end) {
		deadline = t.end
	}
	for {
		n, err := t.c.recv(t.buf, time.Until(deadline))
		if err != nil {
			if err := t.ctx.Err(); err != nil {
				return nil, err
			}
			if isTimeout(err) && !time.Now().Before(t.end) {
				t.send(errorPacket(errUndefined, fmt.Sprintf("transfer took longer than %s", t.maxDur)))
				return nil, fmt.Errorf("%w (%s)", errTooLong, t.maxDur)
			}
			return nil, err
		}
		if n < 4 {
			continue
		}
		p := t.buf[:n]
		if binary.BigEndian.Uint16(p) == opERROR {
			return nil, fmt.Errorf("client error %d: %s", binary.BigEndian.Uint16(p[2:]), strings.TrimRight(string(p[4:]), "\x00"))
		}
		return p, nil
	}
}

// send writes one packet to the client.
func (t *xfer) send(p []byte) error { return t.c.send(p) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (t *xfer) sendOACK() error {
	pkt := oackPacket(t.n.oack)
	for try := 0; try <= t.retries; try++ {
		if err := t.send(pkt); err != nil {
			return err
		}
		deadline := time.Now().Add(t.rto())
		for {
			p, err := t.recv(deadline)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return err
			}
			if binary.BigEndian.Uint16(p) == opACK && binary.BigEndian.Uint16(p[2:]) == 0 {
				t.proven = true
				return nil
			}
		}
	}
	return fmt.Errorf("no ACK of the OACK after %d tries", t.retries+1)
}

// run sends the file in windows of n.windowsize blocks; an ACK of block k
// moves the window to k+1 (block numbers wrap at 65536).
func (t *xfer) run() error {
	bs := int64(t.n.blksize)
	blocks := t.size/bs + 1 // the last block is short (possibly empty)
	// Two packet buffers: while a lock-step client (windowsize 1, how PXE
	// ROMs read) handles block b, block b+1 is made ready in the other one,
	// so that its ACK is answered with one system call.
	var pkts [2]struct {
		b int64 // the block it holds, 0: none
		p []byte
	}
	for i := range pkts {
		pkts[i].p = make([]byte, 4+bs)
	}
	r := newChunkReader(t.f, bs)
	block := func(b int64) ([]byte, error) {
		k := &pkts[b%2]
		if k.b == b {
			return k.p, nil
		}
		m, err := r.read(k.p[4:4+bs], b)
		if err != nil {
			k.b = 0
			return nil, err
		}
		binary.BigEndian.PutUint16(k.p, opDATA)
		binary.BigEndian.PutUint16(k.p[2:], uint16(b))
		k.b, k.p = b, k.p[:4+m]
		return k.p, nil
	}
	base := int64(1) // first unacknowledged block (1-based, absolute)
	tries := 0
	for base <= blocks {
		end := min(base+int64(t.n.windowsize)-1, blocks)
		for b := base; b <= end; b++ {
			p, err := block(b)
			if err != nil {
				t.send(errorPacket(errUndefined, "read error"))
				return err
			}
			if err := t.send(p); err != nil {
				return err
			}
		}
		if end == base && end < blocks {
			block(end + 1) // read ahead; an error shows when it is sent
		}
		deadline := time.Now().Add(t.rto())
		advanced := false
		for !advanced {
			p, err := t.recv(deadline)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return err
			}
			if binary.BigEndian.Uint16(p) != opACK {
				continue
			}
			t.proven = true
			ack := binary.BigEndian.Uint16(p[2:])
			// Distance of ack from base-1 within the 16-bit space.
			d := int64(uint16(ack - uint16(base-1)))
			if d >= 1 && d <= end-base+1 {
				base += d
				advanced = true
			}
		}
		if advanced {
			tries = 0
			continue
		}
		tries++
		if tries > t.retries {
			return fmt.Errorf("no ACK for block %d after %d tries", base, tries)
		}
	}
	return nil
}

// chunkBytes is how much of the file a transfer reads at once.
const chunkBytes = 64 << 10

// chunkReader reads a file's blocks: small blocks through a buffer of
// several (one file read per chunkBytes, not per block), large ones
// straight into the packet.
type chunkReader struct {
	f     io.ReaderAt
	bs    int64
	buf   []byte // nil: blocks are read one by one
	first int64  // the first block in buf (1-based), 0: none
	n     int    // bytes of the file in buf
}

func newChunkReader(f io.ReaderAt, bs int64) *chunkReader {
	r := &chunkReader{f: f, bs: bs}
	if k := chunkBytes / bs; k >= 2 {
		r.buf = make([]byte, k*bs)
	}
	return r
}

// read copies block b (1-based) into dst (len(dst) ≥ bs) and returns its
// length, short for the last block.
func (r *chunkReader) read(dst []byte, b int64) (int, error) {
	off := (b - 1) * r.bs
	if r.buf == nil {
		m, err := r.f.ReadAt(dst[:r.bs], off)
		if err != nil && err != io.EOF {
			return 0, err
		}
		return m, nil
	}
	k := int64(len(r.buf)) / r.bs
	if r.first == 0 || b < r.first || b >= r.first+k {
		r.first = 0
		m, err := r.f.ReadAt(r.buf, off)
		if err != nil && err != io.EOF {
			return 0, err
		}
		r.first, r.n = b, m
	}
	lo := (b - r.first) * r.bs
	hi := min(lo+r.bs, int64(r.n))
	if lo >= hi {
		return 0, nil
	}
	return copy(dst, r.buf[lo:hi]), nil
}

// maxNetascii bounds the files sent in netascii mode, which are converted
// in memory (PXE firmware always reads octet).
const maxNetascii = 16 << 20

// netascii returns f's bytes with LF as CR LF and a bare CR as CR NUL
// (RFC 764, as RFC 1350 asks).
func netascii(f io.ReaderAt, size int64) ([]byte, error) {
	if size > maxNetascii {
		return nil, fmt.Errorf("file of %d bytes too large for netascii mode (max %d): use octet", size, maxNetascii)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	out := make([]byte, 0, size+size/16)
	for _, c := range b {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}
