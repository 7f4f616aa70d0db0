package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// start serves h with o on loopback until the test ends.
func start(t *testing.T, h http.Handler, o Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// closedWithin reports whether the server closes c within limit (a bound
// on the test, not a measurement), reading whatever it sends.
func closedWithin(c net.Conn, limit time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func TestSlowHeaderClosed(t *testing.T) {
	addr := start(t, http.NotFoundHandler(), Options{ReadHeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	// Slowloris: one header byte now and then, never the end.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Write([]byte("X")); err != nil {
				return
			}
		}
	}()
	if !closedWithin(c, 5*time.Second) {
		t.Error("a slow header holds its connection")
	}
}

func TestLimits(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Write([]byte(strings.ToUpper(string(b))))
	})
	addr := start(t, h, Options{MaxHeaderBytes: 1 << 10, MaxBodyBytes: 100})
	for _, tc := range []struct {
		name   string
		header string
		body   string
		status int
	}{
		{"small", "", "hello", 200},
		{"body over the bound", "", strings.Repeat("x", 101), http.StatusRequestEntityTooLarge},
		// net/http allows 4 KiB of slack over MaxHeaderBytes.
		{"header over the bound", strings.Repeat("y", 8<<10), "", http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(tc.body))
			if tc.header != "" {
				req.Header.Set("X-Big", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// A client that stops reading a response is let go after WriteIdle.
func TestStalledReaderReleased(t *testing.T) {
	failed := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for i := 0; i < 4096; i++ { // 256 MiB at most
			if _, err := w.Write(buf); err != nil {
				failed <- err
				return
			}
		}
		failed <- nil
	})
	addr := start(t, h, Options{WriteIdle: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("the whole response went to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled reader holds its response")
	}
}

// Files go through ReadFrom in chunks: what arrives is the file, whole
// or by range.
func TestServeFileThroughReadFrom(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3*chunk+12345)
	rand.Read(data)
	os.WriteFile(filepath.Join(dir, "f"), data, 0o644)
	addr := start(t, http.FileServer(http.Dir(dir)), Options{})
	resp, err := http.Get("http://" + addr + "/f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file: %d bytes of %d, %v", len(got), len(data), err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/f", nil)
	req.Header.Set("Range", "bytes=1000-2100000")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data[1000:2100001]) {
		t.Errorf("range: %d bytes", len(got))
	}
}

// Connections from one source are capped.
func TestPerSourceCap(t *testing.T) {
	addr := start(t, http.NotFoundHandler(), Options{PerSource: 2})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Error("a third connection from one source was served")
	}
	held[0].Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	held[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := bufio.NewReader(held[0]).ReadString('\n'); err != nil || !strings.Contains(l, "404") {
		t.Errorf("a held connection: %q %v", l, err)
	}
}
