package bastion

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// loopback starts a bastion on 127.0.0.1 whose only site host "echo" is a
// loopback echo server; it returns the bastion's address, the echo port and
// a client config with the admin's key.
func loopback(t *testing.T, mod func(*Config)) (addr string, echoPort int, cc *ssh.ClientConfig, audit *syncBuf) {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	echoPort = echo.Addr().(*net.TCPAddr).Port
	_, hpriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSignerFromKey(hpriv)
	_, upriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := ssh.NewSignerFromKey(upriv)
	audit = &syncBuf{}
	cfg := Config{
		HostKey: host,
		Users:   []User{{Name: "admin", Keys: []ssh.PublicKey{user.PublicKey()}, Allow: []Rule{{Host: "echo", Port: echoPort}}}},
		Hosts:   map[string]netip.Addr{"echo": netip.MustParseAddr("127.0.0.1")},
		Audit:   audit,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	cc = &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(user)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()), Timeout: 10 * time.Second}
	return ln.Addr().String(), echoPort, cc, audit
}

// waitClosed reports whether c is closed by the other side within limit
// (a bound on the test, not a measurement).
func waitClosed(c interface{ Wait() error }, limit time.Duration) bool {
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

func TestForwardAndAudit(t *testing.T) {
	addr, port, cc, audit := loopback(t, nil)
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Dial("tcp", net.JoinHostPort("echo", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through the bastion: %q %v", buf, err)
	}
	conn.Close()
	if _, err := c.Dial("tcp", "echo:1"); err == nil || !strings.Contains(err.Error(), "may not reach echo port 1") {
		t.Errorf("a port outside the allow list: %v", err)
	}
	if _, _, err := c.OpenChannel("session", nil); err == nil || !strings.Contains(err.Error(), "jump host") {
		t.Errorf("session channel: %v", err)
	}
	if ok, _, _ := c.SendRequest("tcpip-forward", true, nil); ok {
		t.Error("remote forwarding accepted")
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(audit.String(), `"result":"closed"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{`"bytes_to_server":5,"bytes_to_client":5`, `"resolved":"127.0.0.1:`, "may not reach echo port 1", `"destination":"session"`} {
		if !strings.Contains(audit.String(), want) {
			t.Errorf("audit lacks %s:\n%s", want, audit)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	addr, _, cc, _ := loopback(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !waitClosed(c, 10*time.Second) {
		t.Fatal("an idle connection was not closed")
	}
}

func TestHandshakeDeadline(t *testing.T) {
	addr, _, _, _ := loopback(t, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The server's version line comes first, then nothing: we never answer.
	_, err = io.ReadAll(raw)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a silent client kept its connection past the handshake deadline")
	}
}

func TestBanRefusesConnections(t *testing.T) {
	m := NewMetrics()
	addr, _, cc, _ := loopback(t, func(c *Config) { c.BanAfter = 2; c.Metrics = m })
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	ws, _ := ssh.NewSignerFromKey(wrong)
	bad := *cc
	bad.Auth = []ssh.AuthMethod{ssh.PublicKeys(ws)}
	for i := 0; i < 2; i++ {
		if _, err := ssh.Dial("tcp", addr, &bad); err == nil {
			t.Fatal("an unknown key got in")
		}
	}
	waitRejected(t, m, 2)
	if c, err := ssh.Dial("tcp", addr, cc); err == nil {
		c.Close()
		t.Fatal("a banned source got in with the right key")
	}
}

// syncBuf is an audit sink the test reads while the server writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
