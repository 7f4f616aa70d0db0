package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPollOnlyFastClients: recv polls for the client's datagram only when
// the client's last answer came within spinFor and no other transfer of
// the server polls; a late answer is slept for, and the next wait is not
// polled.
func TestPollOnlyFastClients(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fast   bool          // the client was fast last time
		busy   bool          // another transfer polls
		answer time.Duration // when the client's datagram comes (< 0: never)
		polls  int64         // waits polled for
		polled int64         // datagrams read by polling
		// Whether the next wait is polled; checked only when this one
		// polled or was long: a wait that took under spinFor cannot be
		// asserted fast on a loaded machine.
		fastNext bool
	}{
		{"fast client, answer there: polled", true, false, 0, 1, 1, true},
		{"fast client, answer late: slept for", true, false, 5 * time.Millisecond, 1, 0, false},
		{"fast client, no answer", true, false, -1, 1, 0, false},
		{"slow client last time: slept for", false, false, 0, 0, 0, true},
		{"slow client, answer late", false, false, 5 * time.Millisecond, 0, 0, false},
		{"another transfer polls: slept for", true, true, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawClient(t)
			var tok pollToken
			s, err := dialUDP(net.IPv4(127, 0, 0, 1), c.LocalAddr().(*net.UDPAddr).AddrPort(), &tok)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sa, _ := unix.Getsockname(s.fd)
			to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port)))
			s.fast = tc.fast
			tok.busy.Store(tc.busy)
			switch {
			case tc.answer == 0:
				c.WriteToUDP(ack(7), to)
				time.Sleep(10 * time.Millisecond) // queued at the socket
			case tc.answer > 0:
				time.AfterFunc(tc.answer, func() { c.WriteToUDP(ack(7), to) })
			}
			buf := make([]byte, 16)
			n, err := s.recv(buf, 200*time.Millisecond)
			if tc.answer >= 0 {
				if err != nil || !bytes.Equal(buf[:n], ack(7)) {
					t.Fatalf("recv: %q, %v; want ACK 7", buf[:n], err)
				}
			} else if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("recv: %v, want a timeout", err)
			}
			if got := tok.polls.Load(); got != tc.polls {
				t.Errorf("%d waits polled for, want %d", got, tc.polls)
			}
			if got := tok.polled.Load(); got != tc.polled {
				t.Errorf("%d datagrams read by polling, want %d", got, tc.polled)
			}
			if s.fast != tc.fastNext && (tc.polled == 1 || !tc.fastNext) {
				t.Errorf("next wait polled: %v, want %v", s.fast, tc.fastNext)
			}
			if tok.busy.Load() != tc.busy {
				t.Errorf("poll token held: %v after recv, want %v", tok.busy.Load(), tc.busy)
			}
		})
	}
}

// TestSlowClientNeverPolled: a whole transfer to a client that answers
// each block after a millisecond (slower than spinFor) never polls: a
// PXE ROM on a real LAN costs no CPU spent polling.
func TestSlowClientNeverPolled(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("s"), 20*512), 0o644)
	srv := &Server{Root: root}
	to := rawServer(t, srv)
	c := rawClient(t)
	c.WriteToUDP(rrq("f"), to)
	for b := 1; b <= 21; b++ {
		p, from, ok := read(t, c, 5*time.Second)
		if !ok || binary.BigEndian.Uint16(p) != opDATA || binary.BigEndian.Uint16(p[2:]) != uint16(b) {
			t.Fatalf("block %d: got %q", b, p)
		}
		time.Sleep(time.Millisecond)
		c.WriteToUDP(ack(uint16(b)), from)
	}
	if n, _ := srv.PolledWaits(); n != 0 {
		t.Fatalf("%d waits polled for, want none for a slow client", n)
	}
}
