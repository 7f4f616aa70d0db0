package tcpserve

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Serve(ctx, ln, func(ctx context.Context, c net.Conn) { io.Copy(c, c) })
	}()
	// Short connections do not leave goroutines behind.
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
			t.Fatalf("echo: %q %v", b, err)
		}
		c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines after 50 closed connections, %d before", n, before)
	}
	// A connection still open is closed when the context ends, and Serve returns.
	open, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	open.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("open connection not closed")
	}
}

// flakyListener fails its first n Accepts as a process out of file
// descriptors does.
type flakyListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

// An accept error (EMFILE) does not end the server: it serves the next
// connection.
func TestAcceptErrorRetried(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: real, n: 5}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, func(ctx context.Context, c net.Conn) { io.Copy(c, c) }) }()
	c, err := net.Dial("tcp", real.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		select {
		case err := <-done:
			t.Fatalf("Serve returned %v after an accept error", err)
		default:
		}
		t.Fatalf("no echo after accept errors: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// dialHeld opens a connection from the local address src and reports
// whether the server keeps it open (an echo comes back) or closed it.
func dialHeld(t *testing.T, addr, src string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("x"))
	_, err = io.ReadFull(c, make([]byte, 1))
	return c, err == nil
}

func TestCaps(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max, per  int
		allow     string   // the one source Allow lets in ("": no Allow)
		srcs      []string // one connection from each, in order
		held      []bool
		refusedBy []string
	}{
		{"per source", 10, 2, "", []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"}, []bool{true, true, false, true}, []string{"per_source"}},
		{"overall", 3, 5, "", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}, []bool{true, true, true, false}, []string{"max"}},
		// Strangers are closed before they count: the peer still gets its slot.
		{"allowed peer only", 1, 1, "127.0.0.9", []string{"127.0.0.1", "127.0.0.2", "127.0.0.9", "127.0.0.1"}, []bool{false, false, true, false}, []string{"not_allowed", "not_allowed", "not_allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var refused []string
			s := &Server{Limit: Limit{Max: tc.max, PerSource: tc.per}, Refused: func(r string) { mu.Lock(); refused = append(refused, r); mu.Unlock() }}
			if tc.allow != "" {
				peer := netip.MustParseAddr(tc.allow)
				s.Allow = func(a netip.Addr) bool { return a == peer }
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Serve(ctx, ln, func(ctx context.Context, c net.Conn) { io.Copy(c, c) }); close(done) }()
			defer func() { cancel(); <-done }()
			for i, src := range tc.srcs {
				if _, held := dialHeld(t, ln.Addr().String(), src); held != tc.held[i] {
					t.Errorf("connection %d from %s held=%v, want %v", i, src, held, tc.held[i])
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(refused, ",") != strings.Join(tc.refusedBy, ",") {
				t.Errorf("refused by %v, want %v", refused, tc.refusedBy)
			}
			if n := s.Open(); n != len(tc.srcs)-len(tc.refusedBy) {
				t.Errorf("Open() = %d", n)
			}
		})
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:22":              "192.0.2.7",
		"[::ffff:192.0.2.7]:22":     "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:22": "2001:db8:1:2::",
		"[fe80::1%eth0]:22":         "fe80::",
	} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := Source(a).String(); got != want {
			t.Errorf("Source(%s) = %s, want %s", in, got, want)
		}
	}
}
