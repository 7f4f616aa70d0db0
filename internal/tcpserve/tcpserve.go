// Package tcpserve is the accept loop the gate's TCP servers share: one
// goroutine per connection, the listener closed when the context is done,
// each connection closed when its handler returns or the context is done,
// and Serve returning only once every handler has.
//
// It treats its listener the way OpenSSH and NUT's upsd treat theirs: an
// accept error (file descriptors exhausted, a connection aborted before it
// was accepted) is logged and retried with a growing pause instead of
// ending the server, and connections are capped overall and per source
// (an IPv4 address, or an IPv6 /64: one host usually holds a whole /64).
// A connection over a cap is closed at once, before its handler runs.
package tcpserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the caps.
const (
	DefaultMax       = 512
	DefaultPerSource = 32
)

// Limit counts what is held at once (connections, handshakes), in all and
// per source. The zero value uses the defaults.
type Limit struct {
	// Max bounds the count in all (0: DefaultMax).
	Max int
	// PerSource bounds the count from one source (0: DefaultPerSource).
	PerSource int

	mu   sync.Mutex
	open int
	per  map[netip.Addr]int
}

// Take counts one more from src, or says which cap refuses it: "max" or
// "per_source" (then nothing is counted).
func (l *Limit) Take(src netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[netip.Addr]int{}
	}
	if l.open >= orDefault(l.Max, DefaultMax) {
		return "max"
	}
	if l.per[src] >= orDefault(l.PerSource, DefaultPerSource) {
		return "per_source"
	}
	l.open++
	l.per[src]++
	return ""
}

// Give gives back what Take counted.
func (l *Limit) Give(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.per[src]--; l.per[src] <= 0 {
		delete(l.per, src)
	}
}

// Open returns how many are held.
func (l *Limit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Server is an accept loop whose connections are capped by its Limit.
// The zero value uses the defaults.
type Server struct {
	Limit
	// Log receives the accept errors and the first refusal of a burst
	// (nil: discarded).
	Log *slog.Logger
	// Refused, when set, is called for each connection closed by a cap,
	// with "max" or "per_source", or closed by Allow, with "not_allowed"
	// (for metrics).
	Refused func(reason string)
	// Allow, when set, says whether a connection from the address may be
	// served at all; one it refuses is closed at once, before any cap
	// counts it (for a listener that one peer alone has business with).
	Allow func(netip.Addr) bool

	mu     sync.Mutex
	warned time.Time
}

// Serve accepts connections on ln and runs handle for each until ctx is
// done, with the default caps; see Server.Serve.
func Serve(ctx context.Context, ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	return (&Server{}).Serve(ctx, ln, handle)
}

// Source is the key a connection from a is counted under: its IPv4
// address, or the /64 of its IPv6 address.
func Source(a net.Addr) netip.Addr {
	ip := addrOf(a)
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// addrOf is a's IP address, IPv4 unmapped, without zone (invalid when a
// is not an IP address and port).
func addrOf(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// Serve accepts connections on ln and runs handle for each until ctx is
// done; it returns nil then, or an error only if ln was closed by someone
// else. Other accept errors are retried, pausing 5 ms, doubling up to 1 s
// (see Listener).
func (s *Server) Serve(ctx context.Context, ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	capped := s.Listener(ln)
	for {
		c, err := capped.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // a timeout
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			release := context.AfterFunc(ctx, func() { c.Close() })
			defer func() { release(); c.Close() }()
			handle(ctx, c)
		}()
	}
}

// refused counts a refusal and logs at most one line every ten seconds.
func (s *Server) refused(log *slog.Logger, ln net.Listener, src netip.Addr, reason string) {
	if s.Refused != nil {
		s.Refused(reason)
	}
	s.mu.Lock()
	now := time.Now()
	quiet := now.Sub(s.warned) < 10*time.Second
	if !quiet {
		s.warned = now
	}
	s.mu.Unlock()
	if !quiet {
		log.Warn("connection refused", "listener", ln.Addr().String(), "source", src.String(), "by", reason)
	}
}

func orDefault(n, d int) int {
	if n <= 0 {
		return d
	}
	return n
}

// Listener returns ln with s's caps: Accept retries errors as Serve does
// and closes, without returning them, the connections over a cap; a
// returned connection gives its slot back when closed. For servers that
// run their own accept loop (net/http).
func (s *Server) Listener(ln net.Listener) net.Listener { return &capListener{Listener: ln, s: s} }

type capListener struct {
	net.Listener
	s *Server
}

func (l *capListener) Accept() (net.Conn, error) {
	log := l.s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout()) {
				return nil, err
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "listener", l.Addr().String(), "err", err, "pause", pause)
			time.Sleep(pause)
			continue
		}
		if l.s.Allow != nil {
			if a := addrOf(c.RemoteAddr()); !l.s.Allow(a) {
				c.Close()
				l.s.refused(log, l, a, "not_allowed")
				continue
			}
		}
		src := Source(c.RemoteAddr())
		if reason := l.s.Take(src); reason != "" {
			c.Close()
			l.s.refused(log, l, src, reason)
			continue
		}
		return &capConn{Conn: c, give: sync.OnceFunc(func() { l.s.Give(src) })}, nil
	}
}

type capConn struct {
	net.Conn
	give func()
}

func (c *capConn) Close() error {
	c.give()
	return c.Conn.Close()
}
