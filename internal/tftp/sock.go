package tftp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSock is the socket of one transfer (its TID), kept out of Go's
// network poller. Lock-step TFTP waits for one ACK per block; with the
// poller, every ACK would wake one of its threads (the socket's
// edge-triggered epoll registration) besides the goroutine, and the wait
// itself would go through the scheduler. Here the goroutine waits in a
// blocking recvfrom(2) on its own thread, with the retransmit timeout as
// the socket's SO_RCVTIMEO: one system call waits for the ACK and reads
// it, where a poll loop (dnsmasq's) makes two.
type udpSock struct {
	mu     sync.Mutex // fd against shutdown racing with Close
	fd     int
	family int
	// The last destination and its socket address, made once per peer.
	lastTo netip.AddrPort
	lastSA unix.Sockaddr
	// The socket's receive timeout now (SO_RCVTIMEO), 0: none set.
	rcvTimeout time.Duration
	from       unix.RawSockaddrAny
}

// listenUDP opens a blocking UDP socket on ip, any port.
func listenUDP(ip net.IP) (*udpSock, error) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return nil, fmt.Errorf("tftp: local address %v", ip)
	}
	a = a.Unmap()
	family := unix.AF_INET
	if a.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("tftp: socket: %w", err)
	}
	if family == unix.AF_INET6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0) // [::] serves IPv4 clients too
	}
	s := &udpSock{fd: fd, family: family}
	if err := unix.Bind(fd, s.sockaddr(netip.AddrPortFrom(a, 0))); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tftp: bind %s: %w", a, err)
	}
	return s, nil
}

// sockaddr is ap in the socket's family (an IPv4 address is mapped on an
// IPv6 socket).
func (s *udpSock) sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr().Unmap()
	if a.Is4() && s.family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

// Close closes the socket; a later shutdown does nothing.
func (s *udpSock) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fd := s.fd
	s.fd = -1
	return unix.Close(fd)
}

// shutdown ends a recvFrom waiting now and every later one at once (it
// returns errShutdown): how a transfer learns that the server stops.
func (s *udpSock) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		unix.Shutdown(s.fd, unix.SHUT_RD)
	}
}

// sendTo sends one datagram.
func (s *udpSock) sendTo(p []byte, to netip.AddrPort) error {
	if to != s.lastTo {
		s.lastTo, s.lastSA = to, s.sockaddr(to)
	}
	for {
		err := unix.Sendto(s.fd, p, 0, s.lastSA)
		if err != unix.EINTR {
			return err
		}
	}
}

// errShutdown: the socket was shut down for reading.
var errShutdown = errors.New("socket shut down")

// recvFrom waits up to about d for a datagram and reads it
// (os.ErrDeadlineExceeded when none came). The socket's timeout is set
// again only when d is longer than it or shorter by more than an eighth,
// so that a transfer's waits of nearly the same length (one per block)
// cost no system call besides the read; a wait may thus overrun d by up
// to an eighth.
func (s *udpSock) recvFrom(b []byte, d time.Duration) (int, netip.AddrPort, error) {
	if d < time.Microsecond {
		return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
	}
	if d > s.rcvTimeout || d < s.rcvTimeout-s.rcvTimeout/8 {
		tv := unix.NsecToTimeval(int64(d))
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, netip.AddrPort{}, fmt.Errorf("tftp: receive timeout: %w", err)
		}
		s.rcvTimeout = d
	}
	for {
		s.from.Addr.Family = unix.AF_UNSPEC
		fromLen := uint32(unsafe.Sizeof(s.from))
		r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
			unix.MSG_TRUNC, uintptr(unsafe.Pointer(&s.from)), uintptr(unsafe.Pointer(&fromLen)))
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
		default:
			return 0, netip.AddrPort{}, e
		}
		n := min(int(r), len(b)) // a truncated datagram is read as its first len(b) bytes
		switch s.from.Addr.Family {
		case unix.AF_INET:
			sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.from))
			return n, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port)), nil
		case unix.AF_INET6:
			sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.from))
			return n, netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port)), nil
		}
		// No sender: the socket was shut down (recvfrom returns 0 at once).
		return 0, netip.AddrPort{}, errShutdown
	}
}

// ntohs reads a port as the kernel stores it (network byte order).
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
