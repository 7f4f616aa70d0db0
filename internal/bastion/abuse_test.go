package bastion

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An agent holding other keys before the right one is not banned: the
// keys it offers first are queries, not failures.
func TestAgentWithManyKeysNotBanned(t *testing.T) {
	right := newSigner(t)
	addr, _, cc, _ := loopback(t, func(c *Config) { c.BanAfter = 2; c.Users[0].Keys = []ssh.PublicKey{right.PublicKey()} })
	many := *cc
	var signers []ssh.Signer
	for i := 0; i < 5; i++ {
		signers = append(signers, newSigner(t))
	}
	many.Auth = []ssh.AuthMethod{ssh.PublicKeys(append(signers, right)...)}
	for i := 0; i < 20; i++ {
		c, err := ssh.Dial("tcp", addr, &many)
		if err != nil {
			t.Fatalf("login %d with five other keys first: %v", i+1, err)
		}
		c.Close()
	}
}

// Failures are forgotten after a success.
func TestFailuresResetOnSuccess(t *testing.T) {
	m := NewMetrics()
	addr, _, cc, _ := loopback(t, func(c *Config) { c.BanAfter = 3; c.Metrics = m })
	bad := *cc
	bad.Auth = []ssh.AuthMethod{ssh.PublicKeys(newSigner(t))}
	for round := 0; round < 3; round++ {
		for i := 0; i < 2; i++ {
			if _, err := ssh.Dial("tcp", addr, &bad); err == nil {
				t.Fatal("an unknown key got in")
			}
		}
		waitRejected(t, m, float64(2*(round+1)))
		c, err := ssh.Dial("tcp", addr, cc)
		if err != nil {
			t.Fatalf("round %d: the right key after two failures: %v", round, err)
		}
		c.Close()
	}
}

// SSH keepalives are not activity: a session whose channels carry no data
// is closed after IdleTimeout even when the client keeps the transport busy.
func TestKeepalivesDoNotHoldIdleSession(t *testing.T) {
	addr, _, cc, _ := loopback(t, func(c *Config) { c.IdleTimeout = 400 * time.Millisecond })
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 400; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
				return
			}
		}
	}()
	if !waitClosed(c, 15*time.Second) {
		t.Fatal("keepalives held an idle session open")
	}
}

// Channel data is activity: a session moving data every 100 ms outlives
// an idle timeout of 1.5 s.
func TestChannelDataKeepsSession(t *testing.T) {
	addr, port, cc, _ := loopback(t, func(c *Config) { c.IdleTimeout = 1500 * time.Millisecond })
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Dial("tcp", net.JoinHostPort("echo", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	for i := 0; i < 40; i++ { // 4 s
		time.Sleep(100 * time.Millisecond)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("x")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("a session moving data was closed after %d round trips: %v", i, err)
		}
	}
}

// Unauthenticated connections are capped per source (MaxStartups): a
// source holding its share of silent connections gets no more, another
// source still logs in.
func TestStartupsCapped(t *testing.T) {
	addr, _, cc, _ := loopback(t, func(c *Config) { c.MaxStartupsPerSource = 2; c.MaxStartups = 3 })
	// silent opens a connection from src that never answers the server's
	// version; it reports whether the server sent one (else it closed
	// the connection at once).
	silent := func(src string) bool {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Read(make([]byte, 64))
		return n > 0
	}
	for i := 0; i < 2; i++ {
		if !silent("127.0.0.1") {
			t.Fatalf("silent connection %d refused", i)
		}
	}
	if silent("127.0.0.1") {
		t.Error("a third silent connection from one source got a handshake")
	}
	// Another source logs in.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, cc)
	if err != nil {
		t.Fatalf("another source while one holds its startups: %v", err)
	}
	ssh.NewClient(sc, chans, reqs).Close()
	// The overall cap: a third source's silent connection fills it, a
	// fourth source is refused.
	for i := 0; !silent("127.0.0.3"); i++ { // once 127.0.0.2's handshake is counted out
		if i == 100 {
			t.Fatal("a silent connection under MaxStartups refused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if silent("127.0.0.4") {
		t.Error("a connection over MaxStartups got a handshake")
	}
}

// pipeAddr is a connection seen as coming from another address.
type pipeAddr struct {
	net.Conn
	remote net.Addr
}

func (p pipeAddr) RemoteAddr() net.Addr { return p.remote }

// Bans take an IPv6 source by its /64: another address of the same /64
// is banned too, another /64 is not.
func TestBanIPv6Per64(t *testing.T) {
	host := newSigner(t)
	user := newSigner(t)
	s, err := New(Config{HostKey: host, BanAfter: 2,
		Users: []User{{Name: "admin", Keys: []ssh.PublicKey{user.PublicKey()}}}})
	if err != nil {
		t.Fatal(err)
	}
	login := func(from string, key ssh.Signer) error {
		a, b := tcpPair(t)
		defer a.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			s.handle(ctx, pipeAddr{b, &net.TCPAddr{IP: net.ParseIP(from), Port: 40000}})
			b.Close()
			close(done)
		}()
		defer func() { a.Close(); <-done }()
		cc := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
			HostKeyCallback: ssh.FixedHostKey(host.PublicKey()), Timeout: 5 * time.Second}
		sc, chans, reqs, err := ssh.NewClientConn(a, "bastion", cc)
		if err != nil {
			return err
		}
		ssh.NewClient(sc, chans, reqs).Close()
		return nil
	}
	wrong := newSigner(t)
	for i := 0; i < 2; i++ {
		if login("2001:db8:0:1::a", wrong) == nil {
			t.Fatal("an unknown key got in")
		}
	}
	if login("2001:db8:0:1::b", user) == nil {
		t.Error("another address of a banned /64 got in")
	}
	if err := login("2001:db8:0:2::a", user); err != nil {
		t.Errorf("another /64 is refused: %v", err)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// waitRejected waits until the server has counted n rejected connections
// (a client learns of its failure before the server ends the connection).
func waitRejected(t *testing.T, m *Metrics, n float64) {
	t.Helper()
	rejected := func() float64 { return m.Connections.WithLabelValues("rejected").Value() }
	for i := 0; rejected() < n; i++ {
		if i > 500 {
			t.Fatalf("the server counted %v rejected connections, want %v", rejected(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
