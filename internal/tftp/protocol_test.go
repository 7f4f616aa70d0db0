package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gate/integration/netlab"
)

// rawServer runs s on a loopback socket and returns its address.
func rawServer(t *testing.T, s *Server) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, c); close(done) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	return c.LocalAddr().(*net.UDPAddr)
}

func rawClient(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rrq(name string, opts ...string) []byte {
	b := []byte{0, opRRQ}
	for _, s := range append([]string{name, "octet"}, opts...) {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

// read returns the next packet (bounded wait) and where it came from.
func read(t *testing.T, c *net.UDPConn, wait time.Duration) ([]byte, *net.UDPAddr, bool) {
	t.Helper()
	buf := make([]byte, 70000)
	c.SetReadDeadline(time.Now().Add(wait))
	n, a, err := c.ReadFromUDP(buf)
	if err != nil {
		return nil, nil, false
	}
	return buf[:n], a, true
}

func ack(block uint16) []byte {
	return []byte{0, opACK, byte(block >> 8), byte(block)}
}

// TestRefusalsAnswerError: every refused request gets an ERROR packet with
// the right code, never silence and never data.
func TestRefusalsAnswerError(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "abslink"))
	srv := rawServer(t, &Server{Root: root, Allow: func(a *net.UDPAddr) bool { return true }})

	wrq := rrq("x")
	wrq[1] = opWRQ
	for _, tc := range []struct {
		name  string
		pkt   []byte
		codes []uint16
	}{
		{"write request", wrq, []uint16{errAccess}},
		{"unknown opcode", []byte{0, 9, 'a', 0, 'o', 'c', 't', 'e', 't', 0}, []uint16{errIllegalOp}},
		{"unterminated", []byte{0, opRRQ, 'a', 0, 'o'}, []uint16{errIllegalOp}},
		{"mail mode read", []byte("\x00\x01f\x00mail\x00"), []uint16{errIllegalOp}},
		{"unknown mode", []byte("\x00\x01f\x00bogus\x00"), []uint16{errIllegalOp}},
		{"missing file", rrq("nope"), []uint16{errNotFound}},
		{"directory", rrq("sub"), []uint16{errNotFound}},
		{"dot-dot", rrq("../secret"), []uint16{errAccess, errNotFound}},
		{"backslash dot-dot", rrq(`..\secret`), []uint16{errAccess, errNotFound}},
		{"absolute outside", rrq(filepath.Join(dir, "secret")), []uint16{errAccess, errNotFound}},
		{"absolute symlink out", rrq("abslink"), []uint16{errAccess, errNotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawClient(t)
			if _, err := c.WriteToUDP(tc.pkt, srv); err != nil {
				t.Fatal(err)
			}
			p, _, ok := read(t, c, 5*time.Second)
			if !ok {
				t.Fatalf("no answer to %q", tc.pkt)
			}
			if len(p) < 5 || binary.BigEndian.Uint16(p) != opERROR || p[len(p)-1] != 0 {
				t.Fatalf("answer %q is not an ERROR packet", p)
			}
			code := binary.BigEndian.Uint16(p[2:])
			for _, want := range tc.codes {
				if code == want {
					return
				}
			}
			t.Fatalf("ERROR code %d (%q), want one of %v", code, p[4:len(p)-1], tc.codes)
		})
	}
}

// TestNotAllowed: a client the Allow hook refuses gets an access-violation ERROR.
func TestNotAllowed(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644)
	srv := rawServer(t, &Server{Root: root, Allow: func(*net.UDPAddr) bool { return false }})
	c := rawClient(t)
	c.WriteToUDP(rrq("f"), srv)
	p, _, ok := read(t, c, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(p) != opERROR || binary.BigEndian.Uint16(p[2:]) != errAccess {
		t.Fatalf("got %q, want an access-violation ERROR", p)
	}
}

// TestBoundedRetransmits: a client that never ACKs gets the first block
// Retries+1 times, then nothing more, and the transfer counts as failed.
func TestBoundedRetransmits(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 2000), 0o644)
	s := &Server{Root: root, Retries: 2, Timeout: 50 * time.Millisecond}
	srv := rawServer(t, s)
	c := rawClient(t)
	c.WriteToUDP(rrq("f"), srv)
	copies := 0
	for {
		p, _, ok := read(t, c, 2*time.Second)
		if !ok {
			break
		}
		if binary.BigEndian.Uint16(p) != opDATA || binary.BigEndian.Uint16(p[2:]) != 1 {
			t.Fatalf("unexpected packet %q", p[:4])
		}
		copies++
		if copies > 10 {
			t.Fatal("retransmits are not bounded")
		}
	}
	if copies != 3 {
		t.Fatalf("block 1 sent %d times, want 3 (1 + Retries)", copies)
	}
	for i := 0; s.Failures.Load() == 0; i++ {
		if i > 100 {
			t.Fatal("the abandoned transfer was not counted as failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnknownTID: a stranger writing to a transfer's port gets ERROR 5
// and the transfer goes on (RFC 1350 section 4).
func TestUnknownTID(t *testing.T) {
	root := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 100) // 1600 bytes: 4 blocks
	os.WriteFile(filepath.Join(root, "f"), data, 0o644)
	srv := rawServer(t, &Server{Root: root})
	c := rawClient(t)
	c.WriteToUDP(rrq("f"), srv)
	var got []byte
	p, tid, ok := read(t, c, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(p) != opDATA {
		t.Fatalf("no first block: %q", p)
	}
	if tid.Port == srv.Port {
		t.Fatal("data came from the listening port, not a new TID")
	}
	got = append(got, p[4:]...)

	stranger := rawClient(t)
	stranger.WriteToUDP(ack(1), tid)
	e, _, ok := read(t, stranger, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(e) != opERROR || binary.BigEndian.Uint16(e[2:]) != errUnknownTID {
		t.Fatalf("stranger got %q, want ERROR 5", e)
	}

	for block := uint16(1); ; block++ {
		c.WriteToUDP(ack(block), tid)
		p, _, ok := read(t, c, 5*time.Second)
		if !ok {
			t.Fatalf("no block %d", block+1)
		}
		if binary.BigEndian.Uint16(p) != opDATA || binary.BigEndian.Uint16(p[2:]) != block+1 {
			t.Fatalf("got %q, want DATA %d", p[:4], block+1)
		}
		got = append(got, p[4:]...)
		if len(p) < 4+512 {
			c.WriteToUDP(ack(block+1), tid)
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
}

// TestOACKAndWindow: options are acknowledged as negotiated (tsize is the
// file's size, blksize capped) and a window of blocks arrives per ACK; an
// ACK in the middle of a window resends from the next block.
func TestOACKAndWindow(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 10*100+3) // 11 blocks of 100
	for i := range data {
		data[i] = byte(i)
	}
	os.WriteFile(filepath.Join(root, "f"), data, 0o644)
	srv := rawServer(t, &Server{Root: root, Timeout: 5 * time.Second})
	c := rawClient(t)
	c.WriteToUDP(rrq("f", "blksize", "100", "tsize", "0", "windowsize", "4", "bogus", "1"), srv)
	p, tid, ok := read(t, c, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(p) != opOACK {
		t.Fatalf("want OACK, got %q", p)
	}
	want := "blksize\x00100\x00tsize\x001003\x00windowsize\x004\x00"
	if string(p[2:]) != want {
		t.Fatalf("OACK %q, want %q", p[2:], want)
	}
	c.WriteToUDP(ack(0), tid)
	blocks := func(n int) []uint16 {
		var bs []uint16
		for range n {
			p, _, ok := read(t, c, 5*time.Second)
			if !ok {
				t.Fatalf("window short after %v", bs)
			}
			bs = append(bs, binary.BigEndian.Uint16(p[2:]))
			if !bytes.Equal(p[4:], data[(int(bs[len(bs)-1])-1)*100:min(len(data), int(bs[len(bs)-1])*100)]) {
				t.Fatalf("block %d has the wrong bytes", bs[len(bs)-1])
			}
		}
		return bs
	}
	if got := blocks(4); !equal(got, []uint16{1, 2, 3, 4}) {
		t.Fatalf("first window %v", got)
	}
	c.WriteToUDP(ack(2), tid) // blocks 3 and 4 "lost"
	if got := blocks(4); !equal(got, []uint16{3, 4, 5, 6}) {
		t.Fatalf("window after ACK 2: %v", got)
	}
	c.WriteToUDP(ack(6), tid)
	if got := blocks(4); !equal(got, []uint16{7, 8, 9, 10}) {
		t.Fatalf("window after ACK 6: %v", got)
	}
	c.WriteToUDP(ack(10), tid)
	if got := blocks(1); !equal(got, []uint16{11}) {
		t.Fatalf("last window: %v", got)
	}
	c.WriteToUDP(ack(11), tid)
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fetch reads name lock-step (no options) and returns its bytes.
func fetch(srv *net.UDPAddr, name string) ([]byte, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.WriteToUDP(rrq(name), srv); err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 1500)
	for want := uint16(1); ; want++ {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, tid, err := c.ReadFromUDP(buf)
		if err != nil {
			return nil, fmt.Errorf("waiting for block %d: %w", want, err)
		}
		p := buf[:n]
		if binary.BigEndian.Uint16(p) != opDATA || binary.BigEndian.Uint16(p[2:]) != want {
			return nil, fmt.Errorf("got %q, want DATA %d", p[:min(n, 20)], want)
		}
		out = append(out, p[4:]...)
		c.WriteToUDP(ack(want), tid)
		if n < 4+512 {
			return out, nil
		}
	}
}

// TestConcurrentTransfers: many clients read at once, each gets its file
// whole from its own TID.
func TestConcurrentTransfers(t *testing.T) {
	root := t.TempDir()
	files := map[string][]byte{}
	for i := range 16 {
		b := make([]byte, 20000+i*513)
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		name := fmt.Sprintf("f%d", i)
		files[name] = b
		os.WriteFile(filepath.Join(root, name), b, 0o644)
	}
	srv := rawServer(t, &Server{Root: root, MaxPerSource: len(files)})
	errs := make(chan error, len(files))
	for name, want := range files {
		go func() {
			got, err := fetch(srv, name)
			if err == nil && !bytes.Equal(got, want) {
				err = fmt.Errorf("%s: got %d bytes, want %d", name, len(got), len(want))
			}
			errs <- err
		}()
	}
	for range files {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestBusy: past MaxTransfers a request is refused with an ERROR, not
// dropped.
func TestBusy(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 2000), 0o644)
	srv := rawServer(t, &Server{Root: root, MaxTransfers: 1, Retries: 1, Timeout: 5 * time.Second})
	hold := rawClient(t)
	hold.WriteToUDP(rrq("f"), srv)
	if p, _, ok := read(t, hold, 5*time.Second); !ok || binary.BigEndian.Uint16(p) != opDATA {
		t.Fatalf("first transfer did not start: %q", p)
	}
	// The first transfer now waits for an ACK that never comes.
	c := rawClient(t)
	c.WriteToUDP(rrq("f"), srv)
	p, _, ok := read(t, c, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(p) != opERROR {
		t.Fatalf("second request got %q, want an ERROR (busy)", p)
	}
}

func TestNetasciiConversion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a\nb", "a\r\nb"},
		{"a\r\nb", "a\r\x00\r\nb"},
		{"\r", "\r\x00"},
		{"x\x00y", "x\x00y"},
	} {
		got, err := netascii(bytes.NewReader([]byte(tc.in)), int64(len(tc.in)))
		if err != nil || string(got) != tc.want {
			t.Errorf("netascii(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := netascii(bytes.NewReader(nil), maxNetascii+1); err == nil {
		t.Error("a file past maxNetascii was converted")
	}
}

// TestIntegrationNetascii: tftp-hpa's default (netascii) mode gets a text
// file back exactly, line ends and bare CRs included.
func TestIntegrationNetascii(t *testing.T) {
	netlab.Require(t, "tftp")
	root := t.TempDir()
	var text []byte
	for i := range 300 {
		text = append(text, fmt.Sprintf("line %d\tcr\r mid\n", i)...)
	}
	text = append(text, "last line\r\nwith crlf\n"...)
	os.WriteFile(filepath.Join(root, "t.txt"), text, 0o644)
	port := strconv.Itoa(startServer(t, root))
	out := filepath.Join(t.TempDir(), "out")
	b, err := exec.Command("tftp", "127.0.0.1", port, "-m", "netascii", "-c", "get", "t.txt", out).CombinedOutput()
	got, rerr := os.ReadFile(out)
	if err != nil || rerr != nil || !bytes.Equal(got, text) {
		t.Fatalf("netascii get: %v %v: got %d bytes, want %d: %s", err, rerr, len(got), len(text), b)
	}
}
