package tftp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSock is the socket of one transfer (its TID), kept out of Go's
// network poller. Lock-step TFTP waits for one ACK per block; with the
// poller, every ACK would wake one of its threads (the socket's
// edge-triggered epoll registration) besides the goroutine, and the wait
// itself would go through the scheduler. Here the goroutine waits in
// ppoll(2) on its own thread, as dnsmasq's loop does, and reads and writes
// with plain system calls.
type udpSock struct {
	fd  int
	pfd [1]unix.PollFd
	// The last destination and its socket address, made once per peer.
	lastTo netip.AddrPort
	lastSA unix.Sockaddr
}

// listenUDP opens a non-blocking UDP socket on ip, any port.
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
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("tftp: socket: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(a, 0))); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tftp: bind %s: %w", a, err)
	}
	return &udpSock{fd: fd}, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

func (s *udpSock) Close() error { return unix.Close(s.fd) }

// sendTo sends one datagram.
func (s *udpSock) sendTo(p []byte, to netip.AddrPort) error {
	if to != s.lastTo {
		s.lastTo, s.lastSA = to, sockaddr(to)
	}
	for {
		err := unix.Sendto(s.fd, p, 0, s.lastSA)
		if err != unix.EINTR {
			return err
		}
	}
}

// errWouldBlock: nothing to read yet.
var errWouldBlock = errors.New("no datagram waiting")

// recvFrom reads one waiting datagram (errWouldBlock when none).
func (s *udpSock) recvFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := unix.Recvfrom(s.fd, b, unix.MSG_TRUNC)
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, netip.AddrPort{}, errWouldBlock
		default:
			return 0, netip.AddrPort{}, err
		}
		n = min(n, len(b)) // a truncated datagram is read as its first len(b) bytes
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			return n, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
		case *unix.SockaddrInet6:
			return n, netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), nil
		}
		return n, netip.AddrPort{}, nil
	}
}

// rawWait is how long readable waits without telling the scheduler: an
// ACK on a LAN or loopback usually comes sooner.
const rawWait = 500 * time.Microsecond

// readable waits up to d for a datagram. The first rawWait it calls
// ppoll without telling the scheduler (a raw system call): the thread
// keeps its processor and the wake-up goes straight back to this
// goroutine. Past that it waits in an ordinary system call, which lets the
// scheduler give the processor to other goroutines (the other transfers).
// The scheduler's preemption signal may end a wait early (EINTR: not
// readable).
func (s *udpSock) readable(d time.Duration) (bool, error) {
	s.pfd[0] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	ts := unix.NsecToTimespec(int64(min(d, rawWait)))
	r, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&s.pfd[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	switch {
	case e == unix.EINTR:
		return false, nil
	case e != 0:
		return false, e
	case r > 0 || d <= rawWait:
		return r > 0, nil
	}
	ts = unix.NsecToTimespec(int64(d - rawWait))
	n, err := unix.Ppoll(s.pfd[:], &ts, nil)
	if err == unix.EINTR {
		return false, nil
	}
	return n > 0, err
}
