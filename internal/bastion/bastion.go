// Package bastion is the gate's SSH jump host (golang.org/x/crypto/ssh).
//
// It accepts public-key authentication only, and only direct-tcpip
// channels (what `ssh -J` opens): the destination is resolved, checked
// against the user's allow list, and that resolved address is dialled (no
// second lookup). Sessions, shells, exec, subsystems and remote forwarding
// are refused. Authorization uses the Permissions of the connection, which
// x/crypto/ssh (>= 0.31) sets from the key the client proved it holds
// (CVE-2024-45337), never from keys the callback merely saw.
//
// Handshakes have a deadline; connections are capped overall and per
// source, and so are the ones not yet authenticated (sshd's MaxStartups);
// a connection whose channels carry no data for IdleTimeout is closed
// (keepalives do not count); a source whose connections repeatedly end
// unauthenticated is banned for a while (see banList). Every channel,
// allowed or refused, yields one audit record.
package bastion

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"gate/internal/tcpserve"
)

// Rule is one allow-list entry: a host (a site host's name, an IP, or "*"
// for every host of the site) and a port (0 for any).
type Rule struct {
	Host string
	Port int
}

// ParseRule parses "host:port" (port may be "*").
func ParseRule(s string) (Rule, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return Rule{}, fmt.Errorf("allow rule %q: %v", s, err)
	}
	if h == "" {
		return Rule{}, fmt.Errorf("allow rule %q: no host (a host name, an IP or *)", s)
	}
	if p == "*" {
		return Rule{Host: h}, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return Rule{}, fmt.Errorf("allow rule %q: bad port", s)
	}
	return Rule{Host: h, Port: n}, nil
}

// User is an admin allowed through.
type User struct {
	Name  string
	Keys  []ssh.PublicKey
	Allow []Rule
}

// Config is what a Server needs.
type Config struct {
	HostKey ssh.Signer
	Users   []User
	// Hosts maps the site's host names to their addresses.
	Hosts map[string]netip.Addr

	HandshakeTimeout time.Duration // default 30s
	IdleTimeout      time.Duration // default 15m
	BanAfter         int           // failures from one source; default 5
	BanFor           time.Duration // default 10m
	// MaxConns and MaxPerSource cap the connections held at once
	// (defaults 512 and 16); MaxStartups and MaxStartupsPerSource cap the
	// ones still in their handshake or authentication (defaults 256 and
	// 4: a flood fills them only from 64 sources or more).
	MaxConns, MaxPerSource            int
	MaxStartups, MaxStartupsPerSource int

	Log   *slog.Logger
	Audit io.Writer // one JSON line per channel; may be nil
	// Resolve looks up names that are not site hosts (default: the system
	// resolver); Dial connects to the checked address (default: net.Dialer).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	Dial    func(ctx context.Context, addr string) (net.Conn, error)
	Metrics *Metrics
	// Identify, if set, names the peer at a connection's source address
	// (ip:port) on an overlay network, e.g. its tailnet user and node;
	// audit records carry it as "peer".
	Identify func(source string) string
}

// Server is a running bastion.
type Server struct {
	cfg      Config
	ssh      *ssh.ServerConfig
	bans     *banList
	users    map[string]*User
	accept   tcpserve.Server
	startups tcpserve.Limit
	mu       sync.Mutex // guards Audit writes
}

// New checks cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("bastion: no host key")
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.BanAfter == 0 {
		cfg.BanAfter = 5
	}
	if cfg.BanFor == 0 {
		cfg.BanFor = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Resolve == nil {
		cfg.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{cfg: cfg, bans: newBanList(4096), users: map[string]*User{},
		startups: tcpserve.Limit{Max: cmp.Or(cfg.MaxStartups, 256), PerSource: cmp.Or(cfg.MaxStartupsPerSource, 4)}}
	s.accept = tcpserve.Server{Limit: tcpserve.Limit{Max: cmp.Or(cfg.MaxConns, 512), PerSource: cmp.Or(cfg.MaxPerSource, 16)},
		Log: cfg.Log, Refused: func(reason string) { cfg.Metrics.Connections.WithLabelValues("refused_" + reason).Inc() }}
	for i := range cfg.Users {
		s.users[cfg.Users[i].Name] = &cfg.Users[i]
	}
	s.ssh = &ssh.ServerConfig{
		PublicKeyCallback: s.publicKey,
		MaxAuthTries:      6,
		ServerVersion:     "SSH-2.0-gate-bastion",
		BannerCallback: func(ssh.ConnMetadata) string {
			return ""
		},
	}
	s.ssh.AddHostKey(cfg.HostKey)
	return s, nil
}

// publicKey accepts a key of the named user; the Permissions returned
// become the connection's only when the client proves it holds the key.
func (s *Server) publicKey(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	u, ok := s.users[c.User()]
	if !ok {
		return nil, fmt.Errorf("unknown user %q", c.User())
	}
	m := key.Marshal()
	for _, k := range u.Keys {
		if string(k.Marshal()) == string(m) {
			return &ssh.Permissions{Extensions: map[string]string{"user": u.Name, "key": ssh.FingerprintSHA256(key)}}, nil
		}
	}
	return nil, fmt.Errorf("key %s is not one of %s's", ssh.FingerprintSHA256(key), u.Name)
}

// failed counts a connection that ended unauthenticated against src.
func (s *Server) failed(src netip.Addr) {
	if s.bans.fail(src, s.cfg.BanAfter, s.cfg.BanFor, time.Now()) {
		s.cfg.Metrics.Bans.Inc()
		s.cfg.Log.Warn("source banned", "source", src.String(), "for", s.cfg.BanFor, "after_failures", s.cfg.BanAfter)
	}
}

// Serve accepts connections on ln until ctx is done. Any listener does
// (TCP, a tsnet listener); the caps count sources by RemoteAddr. Several
// listeners served at once share the caps.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.accept.Serve(ctx, ln, s.handle)
}

// activity records when channel data last moved: SSH keepalives and other
// requests do not count, so an idle session is closed even when the
// client keeps its transport alive.
type activity struct{ last atomic.Int64 }

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activity) idle() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }

// activeWriter touches a on every write.
type activeWriter struct {
	w io.Writer
	a *activity
}

func (w activeWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if n > 0 {
		w.a.touch()
	}
	return n, err
}

func (s *Server) handle(ctx context.Context, raw net.Conn) {
	src := tcpserve.Source(raw.RemoteAddr())
	if s.bans.banned(src, time.Now()) {
		s.cfg.Metrics.Connections.WithLabelValues("banned").Inc()
		raw.Close()
		return
	}
	if reason := s.startups.Take(src); reason != "" {
		s.cfg.Metrics.Connections.WithLabelValues("refused_startups_" + reason).Inc()
		raw.Close()
		return
	}
	// The connection's own callbacks: whether it tried to authenticate.
	var tried atomic.Bool
	cfg := *s.ssh
	cfg.AuthLogCallback = func(c ssh.ConnMetadata, method string, err error) {
		if method == "none" {
			return
		}
		tried.Store(true)
		if err != nil {
			s.cfg.Metrics.AuthFailures.WithLabelValues(method).Inc()
		} else {
			s.bans.succeed(src, time.Now()) // before the client learns it
		}
	}
	raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(raw, &cfg)
	s.startups.Give(src)
	if err != nil {
		raw.Close()
		if tried.Load() {
			s.failed(src)
		}
		s.cfg.Metrics.Connections.WithLabelValues("rejected").Inc()
		s.cfg.Log.Info("connection rejected", "source", raw.RemoteAddr().String(), "err", err)
		return
	}
	raw.SetDeadline(time.Time{})
	act := &activity{}
	act.touch()
	defer sconn.Close()
	s.cfg.Metrics.Connections.WithLabelValues("accepted").Inc()
	user, key := sconn.Permissions.Extensions["user"], sconn.Permissions.Extensions["key"]
	s.cfg.Log.Info("login", "user", user, "key", key, "source", raw.RemoteAddr().String())

	// Remote forwarding (-R) and every other global request: refused.
	go func() {
		for r := range reqs {
			if r.Type == "tcpip-forward" || r.Type == "streamlocal-forward@openssh.com" {
				s.cfg.Log.Info("remote forwarding refused", "user", user, "source", raw.RemoteAddr().String(), "request", r.Type)
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	// Idle watchdog.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := min(s.cfg.IdleTimeout/4, 30*time.Second)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				sconn.Close()
				return
			case <-t.C:
				if act.idle() > s.cfg.IdleTimeout {
					s.cfg.Log.Info("idle connection closed", "user", user, "source", raw.RemoteAddr().String())
					sconn.Close()
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for nc := range chans {
		act.touch()
		if nc.ChannelType() != "direct-tcpip" {
			s.cfg.Metrics.Channels.WithLabelValues("refused").Inc()
			s.audit(Record{User: user, Key: key, Source: raw.RemoteAddr().String(), Destination: nc.ChannelType(), Result: "refused: not a forwarding channel"})
			nc.Reject(ssh.Prohibited, "this is a jump host: no shell, exec or subsystem; use ssh -J to reach a server")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.forward(ctx, user, key, raw.RemoteAddr().String(), nc, act)
		}()
	}
	wg.Wait()
}

// directTCPIP is the payload of a direct-tcpip channel (RFC 4254 7.2).
type directTCPIP struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// ParseDirectTCPIP decodes a direct-tcpip channel's extra data.
func ParseDirectTCPIP(b []byte) (host string, port int, err error) {
	var d directTCPIP
	if err := ssh.Unmarshal(b, &d); err != nil {
		return "", 0, fmt.Errorf("malformed direct-tcpip request: %v", err)
	}
	if d.Port == 0 || d.Port > 65535 || d.Host == "" || len(d.Host) > 255 {
		return "", 0, fmt.Errorf("malformed direct-tcpip destination %q port %d", d.Host, d.Port)
	}
	return d.Host, int(d.Port), nil
}

// Decide resolves host and returns the address to dial if user may reach
// it, or why not.
func (s *Server) Decide(ctx context.Context, u *User, host string, port int) (netip.AddrPort, error) {
	var candidates []netip.Addr
	if a, ok := s.cfg.Hosts[strings.ToLower(host)]; ok {
		candidates = []netip.Addr{a}
	} else if a, err := netip.ParseAddr(host); err == nil {
		candidates = []netip.Addr{a.Unmap()}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := s.cfg.Resolve(rctx, host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return netip.AddrPort{}, fmt.Errorf("cannot resolve %q", host)
		}
		candidates = addrs
	}
	for _, a := range candidates {
		a = a.Unmap()
		if s.allowed(u, a, port) {
			return netip.AddrPortFrom(a, uint16(port)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%s may not reach %s port %d", u.Name, host, port)
}

func (s *Server) allowed(u *User, a netip.Addr, port int) bool {
	for _, r := range u.Allow {
		if r.Port != 0 && r.Port != port {
			continue
		}
		switch {
		case r.Host == "*":
			for _, h := range s.cfg.Hosts {
				if h == a {
					return true
				}
			}
		default:
			if h, ok := s.cfg.Hosts[strings.ToLower(r.Host)]; ok && h == a {
				return true
			}
			if ip, err := netip.ParseAddr(r.Host); err == nil && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func (s *Server) forward(ctx context.Context, user, key, source string, nc ssh.NewChannel, act *activity) {
	rec := Record{User: user, Key: key, Source: source}
	start := time.Now()
	host, port, err := ParseDirectTCPIP(nc.ExtraData())
	if err != nil {
		rec.Result = "refused: " + err.Error()
		s.cfg.Metrics.Channels.WithLabelValues("refused").Inc()
		s.audit(rec)
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	rec.Destination = net.JoinHostPort(host, strconv.Itoa(port))
	u := s.users[user]
	if u == nil {
		nc.Reject(ssh.Prohibited, "unknown user")
		return
	}
	ap, err := s.Decide(ctx, u, host, port)
	if err != nil {
		rec.Result = "refused: " + err.Error()
		s.cfg.Metrics.Channels.WithLabelValues("refused").Inc()
		s.audit(rec)
		nc.Reject(ssh.Prohibited, err.Error())
		return
	}
	rec.Resolved = ap.String()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := s.cfg.Dial(dctx, ap.String())
	cancel()
	if err != nil {
		rec.Result = "failed: " + err.Error()
		s.cfg.Metrics.Channels.WithLabelValues("failed").Inc()
		s.audit(rec)
		nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("cannot connect to %s: %v", ap, err))
		return
	}
	defer conn.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	s.cfg.Metrics.Channels.WithLabelValues("opened").Inc()
	s.cfg.Metrics.Open.Inc()
	defer s.cfg.Metrics.Open.Dec()
	var in, out int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		out, _ = io.Copy(activeWriter{conn, act}, ch) // client → server
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		in, _ = io.Copy(activeWriter{ch, act}, conn) // server → client
		ch.CloseWrite()
	}()
	wg.Wait()
	rec.BytesToServer, rec.BytesToClient = out, in
	rec.Duration = time.Since(start).Round(time.Millisecond).String()
	rec.Result = "closed"
	s.cfg.Metrics.Bytes.WithLabelValues("to_server").Add(float64(out))
	s.cfg.Metrics.Bytes.WithLabelValues("to_client").Add(float64(in))
	s.audit(rec)
}

// Record is one audit record.
type Record struct {
	Time          string `json:"time"`
	User          string `json:"user"`
	Key           string `json:"key"`
	Source        string `json:"source"`
	Destination   string `json:"destination"`
	Resolved      string `json:"resolved,omitempty"`
	BytesToServer int64  `json:"bytes_to_server"`
	BytesToClient int64  `json:"bytes_to_client"`
	Duration      string `json:"duration"`
	Result        string `json:"result"`
	Peer          string `json:"peer,omitempty"`
}

func (s *Server) audit(r Record) {
	r.Time = time.Now().UTC().Format(time.RFC3339)
	if r.Duration == "" {
		r.Duration = "0s"
	}
	if s.cfg.Identify != nil {
		r.Peer = s.cfg.Identify(r.Source)
	}
	s.cfg.Log.Info("audit", "peer", r.Peer, "user", r.User, "key", r.Key, "source", r.Source, "destination", r.Destination,
		"resolved", r.Resolved, "bytes_to_server", r.BytesToServer, "bytes_to_client", r.BytesToClient, "duration", r.Duration, "result", r.Result)
	if s.cfg.Audit == nil {
		return
	}
	b, _ := json.Marshal(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.cfg.Audit.Write(append(b, '\n')); err != nil {
		s.cfg.Log.Error("audit file", "err", err)
	}
}
