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

// Server is an accept loop with caps. The zero value uses the defaults.
type Server struct {
	// Max bounds the connections served at once (0: DefaultMax).
	Max int
	// PerSource bounds the connections served at once from one source
	// (0: DefaultPerSource).
	PerSource int
	// Log receives the accept errors and the first refusal of a burst
	// (nil: discarded).
	Log *slog.Logger
	// Refused, when set, is called for each connection closed by a cap,
	// with "max" or "per_source" (for metrics).
	Refused func(reason string)

	mu     sync.Mutex
	open   int
	per    map[netip.Addr]int
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
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
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

// Open returns how many connections are being served.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// take counts a connection from src in, or says which cap refuses it.
func (s *Server) take(src netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.per == nil {
		s.per = map[netip.Addr]int{}
	}
	if s.open >= orDefault(s.Max, DefaultMax) {
		return "max"
	}
	if s.per[src] >= orDefault(s.PerSource, DefaultPerSource) {
		return "per_source"
	}
	s.open++
	s.per[src]++
	return ""
}

func (s *Server) give(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if s.per[src]--; s.per[src] <= 0 {
		delete(s.per, src)
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
		log.Warn("connection refused: cap reached", "listener", ln.Addr().String(), "source", src.String(), "cap", reason)
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
		src := Source(c.RemoteAddr())
		if reason := l.s.take(src); reason != "" {
			c.Close()
			l.s.refused(log, l, src, reason)
			continue
		}
		return &capConn{Conn: c, give: sync.OnceFunc(func() { l.s.give(src) })}, nil
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
