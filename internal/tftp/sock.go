package tftp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSock is the socket of one transfer (its TID), connected to the
// client and kept out of Go's network poller. Lock-step TFTP waits for one
// ACK per block; with the poller, every ACK would wake one of its threads
// (the socket's edge-triggered epoll registration) besides the goroutine,
// and the wait itself would go through the scheduler. Here the goroutine
// waits in a blocking read(2) on its own thread, with the retransmit
// timeout as the socket's SO_RCVTIMEO: one system call waits for the ACK
// and reads it, where a poll loop (dnsmasq's) makes two. Being connected,
// the socket sends without a route lookup per block and receives through
// the kernel's early demultiplexing.
//
// A fast client answers sooner than a sleeping thread wakes up: on
// loopback, waking the server's thread when the ACK comes costs about as
// much as the client's whole turn. So when the client's last answer came
// within spinFor, recv first polls the socket (non-blocking reads) for up
// to spinFor, and sleeps only if nothing came. A client slower than that
// (any behind a 100 Mbit/s NIC, where a 512-byte block and its ACK take
// over 50 µs on the wire alone) is never polled for: its first wait is
// slept, and so is every wait after a long one. One transfer of a server
// polls at a time (the server's poll token), so that several fast clients
// take one CPU, not all.
//
// A connected socket no longer receives from anyone else, so a second,
// unconnected socket shares its port (SO_REUSEPORT; the kernel gives a
// datagram to the connected socket when it comes from the client, to the
// other one otherwise) and answers strangers with "unknown transfer ID"
// (RFC 1350) from a goroutine of its own, woken only by strangers.
type udpSock struct {
	mu         sync.Mutex // fd against shutdown racing with Close
	fd         int
	rcvTimeout time.Duration // the socket's SO_RCVTIMEO now, 0: none set
	shut       atomic.Bool   // shutdown was called
	strangers  net.PacketConn
	done       chan struct{} // closed when the strangers' goroutine ends
	poll       *pollToken    // the server's; nil: never poll
	fast       bool          // the client's last answer came within spinFor
}

// spinFor is how long recv polls for a fast client's answer before it
// sleeps.
const spinFor = 50 * time.Microsecond

// pollToken lets one transfer of a server poll at a time; polls counts
// the waits polled for, polled the datagrams read by polling.
type pollToken struct {
	busy          atomic.Bool
	polls, polled atomic.Int64
}

// dialUDP opens a socket on ip, any port, connected to peer, and the
// strangers' socket beside it.
func dialUDP(ip net.IP, peer netip.AddrPort, poll *pollToken) (*udpSock, error) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return nil, fmt.Errorf("tftp: local address %v", ip)
	}
	a = a.Unmap()
	fd, err := reusePortSocket(netip.AddrPortFrom(a, 0))
	if err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tftp: local port: %w", err)
	}
	var port int
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		port = sa.Port
	case *unix.SockaddrInet6:
		port = sa.Port
	}
	sfd, err := reusePortSocket(netip.AddrPortFrom(a, uint16(port)))
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(sfd), "tftp strangers")
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tftp: strangers' socket: %w", err)
	}
	if err := unix.Connect(fd, sockaddr(a, peer)); err != nil {
		unix.Close(fd)
		pc.Close()
		return nil, fmt.Errorf("tftp: connect to %s: %w", peer, err)
	}
	s := &udpSock{fd: fd, strangers: pc, done: make(chan struct{}), poll: poll}
	go s.answerStrangers()
	return s, nil
}

// reusePortSocket opens a blocking UDP socket with SO_REUSEPORT bound to
// ap; one on [::] serves IPv4 clients too.
func reusePortSocket(ap netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("tftp: socket: %w", err)
	}
	if family == unix.AF_INET6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tftp: SO_REUSEPORT: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(ap.Addr(), ap)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tftp: bind %s: %w", ap, err)
	}
	return fd, nil
}

// sockaddr is ap for a socket bound to local's family (an IPv4 address is
// mapped on an IPv6 socket).
func sockaddr(local netip.Addr, ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr().Unmap()
	if a.Is4() && local.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

// answerStrangers answers every datagram on the strangers' socket with
// ERROR 5 until it is closed.
func (s *udpSock) answerStrangers() {
	defer close(s.done)
	buf := make([]byte, 4)
	pkt := errorPacket(errUnknownTID, "unknown transfer ID")
	for {
		_, a, err := s.strangers.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.strangers.WriteTo(pkt, a)
	}
}

// Close closes both sockets; a later shutdown does nothing.
func (s *udpSock) Close() error {
	s.strangers.Close()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	fd := s.fd
	s.fd = -1
	return unix.Close(fd)
}

// shutdown ends a recv waiting now and every later one at once (it
// returns errShutdown): how a transfer learns that the server stops.
func (s *udpSock) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shut.Store(true)
	if s.fd >= 0 {
		unix.Shutdown(s.fd, unix.SHUT_RD)
	}
}

// send sends one datagram to the client.
func (s *udpSock) send(p []byte) error {
	for {
		_, err := unix.Write(s.fd, p)
		if err != unix.EINTR {
			return err
		}
	}
}

// errShutdown: the socket was shut down for reading (a read returns an
// empty datagram at once).
var errShutdown = errors.New("socket shut down")

// recv waits up to about d for a datagram from the client and reads it
// into b (os.ErrDeadlineExceeded when none came; a longer datagram is read
// as its first len(b) bytes, the rest dropped). The socket's timeout is set again only when
// d is longer than it or shorter by more than an eighth, so that a
// transfer's waits of nearly the same length (one per block) cost no
// system call besides the read; a wait may thus overrun d by up to an
// eighth. A fast client's datagram is polled for first (see udpSock).
func (s *udpSock) recv(b []byte, d time.Duration) (int, error) {
	if d < time.Microsecond {
		return 0, os.ErrDeadlineExceeded
	}
	if d > s.rcvTimeout || d < s.rcvTimeout-s.rcvTimeout/8 {
		tv := unix.NsecToTimeval(int64(d))
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, fmt.Errorf("tftp: receive timeout: %w", err)
		}
		s.rcvTimeout = d
	}
	start := time.Now()
	n, polled := s.tryPoll(b, min(d, spinFor))
	// Fast: caught by polling (which gives up after spinFor), or answered
	// within spinFor all the same.
	defer func() { s.fast = polled || time.Since(start) < spinFor }()
	for !polled {
		var err error
		n, err = unix.Read(s.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return 0, os.ErrDeadlineExceeded
		}
		if err != nil {
			return 0, err
		}
		break
	}
	if n == 0 && s.shut.Load() {
		return 0, errShutdown
	}
	return n, nil
}

// tryPoll reads a datagram into b without sleeping, trying for up to d,
// when the client was fast last time and no other transfer polls now.
func (s *udpSock) tryPoll(b []byte, d time.Duration) (int, bool) {
	if !s.fast || s.poll == nil || len(b) == 0 || !s.poll.busy.CompareAndSwap(false, true) {
		return 0, false
	}
	defer s.poll.busy.Store(false)
	s.poll.polls.Add(1)
	for start := time.Now(); time.Since(start) < d; {
		// A non-blocking recv(2) never sleeps, so it need not tell the
		// scheduler (RawSyscall).
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			s.poll.polled.Add(1)
			return int(n), true
		case unix.EAGAIN, unix.EINTR:
		default:
			return 0, false // the blocking read says what is wrong
		}
	}
	return 0, false
}
