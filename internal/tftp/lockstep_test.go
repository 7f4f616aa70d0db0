package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLockStepACKs drives a lock-step transfer (no options, 512-byte
// blocks) by script: a block goes out once per new ACK, never once per
// ACK (a duplicate ACK sending the next block again is the Sorcerer's
// Apprentice bug, RFC 1123 4.2.3.1, which doubles every later block); a
// lost ACK brings the same block back after the retransmit timeout; an
// ACK of a block not yet sent moves nothing.
func TestLockStepACKs(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 4*512+100) // blocks 1-4 full, 5 short
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(root, "f"), data, 0o644)
	type step struct {
		ack  int // ≥ 0: send ACK ack
		data int // > 0: expect DATA data (its bytes checked); 0 with ack < 0: expect silence
	}
	a := func(n int) step { return step{ack: n} }
	d := func(n int) step { return step{ack: -1, data: n} }
	quiet := step{ack: -1}
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		steps   []step
	}{
		{"in order", 5 * time.Second, []step{d(1), a(1), d(2), a(2), d(3), a(3), d(4), a(4), d(5), a(5)}},
		{"duplicate ACK sends nothing", 5 * time.Second, []step{d(1), a(1), a(1), d(2), quiet, a(1), quiet, a(2), d(3), quiet, a(3), d(4)}},
		{"duplicate ACKs at once", 5 * time.Second, []step{d(1), a(1), d(2), a(2), a(2), a(2), d(3), quiet, a(3), d(4)}},
		{"lost ACK: same block again", 150 * time.Millisecond, []step{d(1), a(1), d(2), d(2), a(2), d(3)}},
		{"ACK of a block not sent", 5 * time.Second, []step{d(1), a(3), quiet, a(1), d(2), a(9), quiet, a(2), d(3)}},
		{"late ACK of the first block", 5 * time.Second, []step{d(1), a(0), quiet, a(1), d(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rawServer(t, &Server{Root: root, Timeout: tc.timeout, Retries: 3})
			c := rawClient(t)
			c.WriteToUDP(rrq("f"), srv)
			var tid *net.UDPAddr
			for i, s := range tc.steps {
				switch {
				case s.ack >= 0:
					c.WriteToUDP(ack(uint16(s.ack)), tid)
				case s.data > 0:
					p, from, ok := read(t, c, 5*time.Second)
					if !ok {
						t.Fatalf("step %d: no DATA %d", i, s.data)
					}
					tid = from
					lo, hi := (s.data-1)*512, min(s.data*512, len(data))
					if binary.BigEndian.Uint16(p) != opDATA || binary.BigEndian.Uint16(p[2:]) != uint16(s.data) || !bytes.Equal(p[4:], data[lo:hi]) {
						t.Fatalf("step %d: got %q…, want DATA %d", i, p[:min(len(p), 8)], s.data)
					}
				default:
					// Silence: nothing within a third of the timeout (the
					// retransmit would come after it).
					if p, _, ok := read(t, c, min(tc.timeout/3, 300*time.Millisecond)); ok {
						t.Fatalf("step %d: got %q…, want nothing", i, p[:min(len(p), 8)])
					}
				}
			}
		})
	}
}

// TestChunkReader: every block, read in order, backwards (a window sent
// again) or at random, has the file's bytes, the last one short or empty,
// for block sizes below, at and above the chunk.
func TestChunkReader(t *testing.T) {
	for _, tc := range []struct {
		bs, size int64
	}{
		{8, 0}, {8, 7}, {8, 8}, {512, 512*3 + 1}, {512, chunkBytes * 3}, {512, chunkBytes*2 + 100},
		{1468, 100000}, {8192, chunkBytes + 8192*3}, {chunkBytes / 2, chunkBytes * 2}, {65464, 65464*2 + 5},
	} {
		t.Run(fmt.Sprintf("bs%d_size%d", tc.bs, tc.size), func(t *testing.T) {
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i*13 + i>>8)
			}
			blocks := tc.size/tc.bs + 1
			var order []int64
			for b := int64(1); b <= blocks; b++ {
				order = append(order, b)
			}
			for b := blocks; b >= 1; b-- {
				order = append(order, b)
			}
			for i := int64(0); i < blocks; i++ {
				order = append(order, (i*7919)%blocks+1)
			}
			r := newChunkReader(bytes.NewReader(data), tc.bs)
			dst := make([]byte, tc.bs)
			for _, b := range order {
				n, err := r.read(dst, b)
				if err != nil {
					t.Fatalf("block %d: %v", b, err)
				}
				lo, hi := min((b-1)*tc.bs, tc.size), min(b*tc.bs, tc.size)
				if !bytes.Equal(dst[:n], data[lo:hi]) {
					t.Fatalf("block %d: %d bytes, want %d of the file's", b, n, hi-lo)
				}
			}
		})
	}
}

// TestStopEndsTransfers: stopping the server ends a transfer that waits
// for an ACK at once, not after its retransmits.
func TestStopEndsTransfers(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("z"), 5000), 0o644)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &Server{Root: root, Timeout: time.Minute, Retries: 2} // alone, the transfer would last 3 minutes
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	c := rawClient(t)
	c.WriteToUDP(rrq("f"), conn.LocalAddr().(*net.UDPAddr))
	if p, _, ok := read(t, c, 5*time.Second); !ok || binary.BigEndian.Uint16(p) != opDATA {
		t.Fatalf("no first block: %q", p)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve still waits for the transfer 30s after the stop")
	}
	if s.Transfers.Load() != 1 {
		t.Fatalf("%d transfers counted, want the stopped one", s.Transfers.Load())
	}
}
