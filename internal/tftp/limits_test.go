package tftp

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oackOptions returns the options of an OACK packet.
func oackOptions(t *testing.T, p []byte) map[string]string {
	t.Helper()
	if len(p) < 2 || binary.BigEndian.Uint16(p) != opOACK {
		t.Fatalf("got %q, want an OACK", p)
	}
	f := strings.Split(strings.TrimSuffix(string(p[2:]), "\x00"), "\x00")
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

// TestTimeoutOptionBounded: a client may not make the server wait longer
// than MaxTimeout between retransmits: a larger timeout option is declined
// (absent from the OACK), a smaller one acknowledged as asked.
func TestTimeoutOptionBounded(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 2000), 0o644)
	srv := rawServer(t, &Server{Root: root})
	for _, tc := range []struct {
		ask  string
		want string // in the OACK; "" = declined
	}{{"255", ""}, {"11", ""}, {"10", "10"}, {"3", "3"}} {
		c := rawClient(t)
		c.WriteToUDP(rrq("f", "timeout", tc.ask, "tsize", "0"), srv)
		p, _, ok := read(t, c, 5*time.Second)
		if !ok {
			t.Fatalf("timeout %s: no answer", tc.ask)
		}
		if got := oackOptions(t, p)["timeout"]; got != tc.want {
			t.Errorf("timeout %s: OACK says timeout %q, want %q", tc.ask, got, tc.want)
		}
	}
}

// TestSpoofedRequestsFreeTheirSlots: requests from 64 addresses that never
// answer (spoofed), each asking for the longest timeout, fill every slot
// only for (Retries+1) × the server's own Timeout; then a real client is
// served.
func TestSpoofedRequestsFreeTheirSlots(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 2000), 0o644)
	srv := rawServer(t, &Server{Root: root, Timeout: 100 * time.Millisecond, Retries: 2})
	for i := range 64 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(2+i))})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteToUDP(rrq("f", "timeout", "255"), srv)
	}
	time.Sleep(50 * time.Millisecond) // every slot is taken now
	var err error
	for try := 0; try < 50; try++ { // bounded: 50 × 100 ms
		if _, err = fetch(srv, "f"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("a real client was not served while spoofed requests held the slots: %v", err)
}

// TestPerSourceCap: one address holds at most MaxPerSource transfers; the
// next request from it is refused with an ERROR, another address is served.
func TestPerSourceCap(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 2000), 0o644)
	srv := rawServer(t, &Server{Root: root, Timeout: 5 * time.Second, Retries: 1})
	hold := rawClient(t) // 127.0.0.1
	for i := range 4 {
		hold.WriteToUDP(rrq("f"), srv)
		if p, _, ok := read(t, hold, 5*time.Second); !ok || binary.BigEndian.Uint16(p) != opDATA {
			t.Fatalf("transfer %d did not start: %q", i, p)
		}
	}
	hold.WriteToUDP(rrq("f"), srv)
	p, _, ok := read(t, hold, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(p) != opERROR || !strings.Contains(string(p), "too many transfers") {
		t.Fatalf("a 5th transfer from one address got %q, want an ERROR", p)
	}
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.WriteToUDP(rrq("f"), srv)
	if p, _, ok := read(t, other, 5*time.Second); !ok || binary.BigEndian.Uint16(p) != opDATA {
		t.Fatalf("another address got %q, want DATA", p)
	}
}

// TestACKTrickleCutOff: a client that ACKs each block just before the
// retransmit timeout, forever, is cut off with an ERROR at MaxDuration.
func TestACKTrickleCutOff(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 1<<20), 0o644)
	s := &Server{Root: root, Timeout: 400 * time.Millisecond, MaxDuration: time.Second}
	srv := rawServer(t, s)
	c := rawClient(t)
	c.WriteToUDP(rrq("f", "blksize", "8"), srv)
	p, tid, ok := read(t, c, 5*time.Second)
	if !ok || binary.BigEndian.Uint16(p) != opOACK {
		t.Fatalf("got %q, want an OACK", p)
	}
	var last uint16
	for i := 0; i < 20; i++ { // bounded: 20 × 250 ms, well past MaxDuration
		time.Sleep(250 * time.Millisecond)
		c.WriteToUDP(ack(last), tid)
		p, _, ok = read(t, c, 2*time.Second)
		if !ok {
			t.Fatal("the server went silent without an ERROR")
		}
		switch binary.BigEndian.Uint16(p) {
		case opERROR:
			if !strings.Contains(string(p), "longer than") {
				t.Errorf("ERROR %q", p)
			}
			if i < 3 {
				t.Errorf("cut off after %d ACKs, before MaxDuration", i)
			}
			return
		case opDATA:
			last = binary.BigEndian.Uint16(p[2:])
		}
	}
	t.Fatal("an ACK trickle kept the transfer alive past MaxDuration")
}
