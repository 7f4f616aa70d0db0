package pxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Server is the proxyDHCP server.
type Server struct {
	Config *Config
	// Interface, if set, binds the sockets to one interface (the LAN).
	Interface string
	// Addr67 and Addr4011 default to ":67" and ":4011".
	Addr67, Addr4011 string
	Log              *slog.Logger
	// Pool, if set, makes port 67 a full DHCP server (bootstrap.dhcp: full).
	Pool *Pool
	// Answered and Ignored count requests.
	Answered, Ignored atomic.Int64
}

func (s *Server) listen(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			}
			if serr == nil && s.Interface != "" {
				serr = syscall.BindToDevice(int(fd), s.Interface)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("pxe: listen %s: %w", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// Run serves until ctx is done. ready, if not nil, is called once both
// sockets are bound.
func (s *Server) Run(ctx context.Context, ready func()) error {
	a67, a4011 := s.Addr67, s.Addr4011
	if a67 == "" {
		a67 = ":67"
	}
	if a4011 == "" {
		a4011 = ":4011"
	}
	c67, err := s.listen(ctx, a67)
	if err != nil {
		return err
	}
	defer c67.Close()
	c4011, err := s.listen(ctx, a4011)
	if err != nil {
		return err
	}
	defer c4011.Close()
	if ready != nil {
		ready()
	}
	errc := make(chan error, 2)
	go func() { errc <- s.serve(ctx, c67, true) }()
	go func() { errc <- s.serve(ctx, c4011, false) }()
	err = <-errc
	c67.SetReadDeadline(time.Now())
	c4011.SetReadDeadline(time.Now())
	err2 := <-errc
	return errors.Join(err, err2)
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) serve(ctx context.Context, c *net.UDPConn, broadcast bool) error {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, addr, err := c.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return fmt.Errorf("pxe: read: %w", err)
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			s.Ignored.Add(1)
			continue
		}
		var d Decision
		switch {
		case broadcast && s.Pool != nil:
			d = AnswerFull(s.Config, s.Pool, req, time.Now())
		case broadcast:
			d = AnswerOn67(s.Config, req)
		default:
			d = Answer(s.Config, req)
		}
		if d.Reply == nil {
			s.Ignored.Add(1)
			if req.ClassIdentifier() != "" {
				s.log().Debug("pxe ignored", "mac", req.ClientHWAddr.String(), "reason", d.Reason)
			}
			continue
		}
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
		if !broadcast || (!req.ClientIPAddr.IsUnspecified() && !req.IsBroadcast()) {
			dst = addr
		}
		if _, err := c.WriteToUDP(d.Reply.ToBytes(), dst); err != nil {
			s.log().Warn("pxe reply failed", "mac", req.ClientHWAddr.String(), "to", dst, "err", err)
			continue
		}
		s.Answered.Add(1)
		s.log().Info("pxe answer", "mac", req.ClientHWAddr.String(), "type", d.Reply.MessageType().String(), "file", d.File, "why", d.Reason)
	}
}
