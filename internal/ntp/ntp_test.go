package ntp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// answer builds a server's answer to the request with transmit timestamp
// origin, received at t2 and sent at t3 by the server's clock.
func answer(origin []byte, leap, stratum uint8, t2, t3 time.Time) []byte {
	b := make([]byte, 0, packetLen)
	b = append(b, leap<<6|4<<3|4, stratum, 6, 0xec)
	b = binary.BigEndian.AppendUint32(b, 1<<16)  // root delay 1 s
	b = binary.BigEndian.AppendUint32(b, 1<<15)  // root dispersion 0.5 s
	b = append(b, 'L', 'O', 'C', 'L')            // reference id
	b = appendTimestamp(b, t2.Add(-time.Minute)) // reference time
	b = append(b, origin...)
	b = appendTimestamp(b, t2)
	b = appendTimestamp(b, t3)
	return b
}

func TestParse(t *testing.T) {
	origin := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	t1 := time.Date(1970, 1, 1, 0, 0, 10, 0, time.UTC) // a Pi just booted
	real := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	// Sent at t1 (local), 10 ms on the wire each way, 1 ms at the server.
	t2 := real.Add(10 * time.Millisecond)
	t3 := t2.Add(time.Millisecond)
	t4 := t1.Add(21 * time.Millisecond)
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"good", answer(origin, 0, 2, t2, t3), ""},
		{"leap second announced is still good", answer(origin, 1, 2, t2, t3), ""},
		{"short", answer(origin, 0, 2, t2, t3)[:47], "47 bytes"},
		{"client mode", func() []byte { b := answer(origin, 0, 2, t2, t3); b[0] = b[0]&^7 | 3; return b }(), "mode 3"},
		{"version 0", func() []byte { b := answer(origin, 0, 2, t2, t3); b[0] &^= 7 << 3; return b }(), "version 0"},
		{"not our request", answer([]byte{9, 9, 9, 9, 9, 9, 9, 9}, 0, 2, t2, t3), "another request"},
		{"kiss of death", func() []byte { b := answer(origin, 0, 0, t2, t3); copy(b[12:16], "RATE"); return b }(), "kiss-o'-death: \"RATE\""},
		{"stratum 16", answer(origin, 0, 16, t2, t3), "stratum 16"},
		{"alarm", answer(origin, 3, 2, t2, t3), "leap indicator 3"},
		{"zero transmit", func() []byte { b := answer(origin, 0, 2, t2, t3); copy(b[40:48], make([]byte, 8)); return b }(), "zero"},
		{"sent before received", answer(origin, 0, 2, t3, t2), "before it received"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.b, origin, t1, t4)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %+v, %v; want error with %q", r, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := t1.Add(r.Offset); got.Sub(real).Abs() > time.Millisecond {
				t.Errorf("clock set to %v, want %v (offset %v)", got, real, r.Offset)
			}
			if r.Delay != 20*time.Millisecond {
				t.Errorf("delay %v, want 20ms", r.Delay)
			}
			if r.Stratum != 2 || r.RootDistance != time.Second {
				t.Errorf("stratum %d root distance %v", r.Stratum, r.RootDistance)
			}
		})
	}
}

// Era 1: past 2036-02-07 the 32-bit seconds wrap; the client keeps the
// right date.
func TestTimestampEras(t *testing.T) {
	for _, want := range []time.Time{
		time.Date(2026, 11, 26, 12, 0, 0, 500_000_000, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC),
		time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got := toTime(appendTimestamp(nil, want))
		if got.Sub(want).Abs() > time.Microsecond {
			t.Errorf("round trip of %v = %v", want, got)
		}
	}
}

// Query against a server on loopback: a late answer to an earlier request
// is skipped, the answer to this one is taken.
func TestQuery(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	real := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	go func() {
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		if err != nil || n != packetLen {
			return
		}
		pc.WriteTo(answer([]byte("stale!!!"), 0, 3, real, real), from)
		pc.WriteTo(answer(buf[40:48], 0, 3, real, real), from)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	epoch := time.Unix(0, 0)
	r, err := Query(ctx, pc.LocalAddr().String(), func() time.Time { return epoch })
	if err != nil {
		t.Fatal(err)
	}
	if got := epoch.Add(r.Offset); !got.Equal(real) || r.Stratum != 3 {
		t.Errorf("offset to %v stratum %d, want %v 3", got, r.Stratum, real)
	}
}

func TestQueryNoAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Query(ctx, pc.LocalAddr().String(), time.Now); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("Query of a silent server: %v", err)
	}
}

// FuzzParse: whatever the bytes, an accepted answer is a server's answer
// to our request, from a synchronised server of stratum 1-15, and its
// offset and delay are the RFC 5905 formulas applied to its timestamps.
func FuzzParse(f *testing.F) {
	origin := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Add(answer(origin, 0, 2, now, now.Add(time.Millisecond)))
	f.Add(answer(origin, 3, 0, now, now))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		t1, t4 := time.Unix(100, 0), time.Unix(100, 30e6)
		r, err := Parse(b, origin, t1, t4)
		if err != nil {
			if errors.Is(err, ErrKissOfDeath) && b[1] != 0 {
				t.Fatalf("kiss-o'-death for stratum %d", b[1])
			}
			return
		}
		if b[0]&7 != 4 || b[0]>>6 == 3 || r.Stratum < 1 || r.Stratum > 15 || string(b[24:32]) != string(origin) {
			t.Fatalf("accepted %x: %+v", b[:4], r)
		}
		t2, t3 := toTime(b[32:40]), toTime(b[40:48])
		if t3.Before(t2) || r.Delay < 0 || r.Offset != (t2.Sub(t1)+t3.Sub(t4))/2 {
			t.Fatalf("offset %v delay %v from t2 %v t3 %v", r.Offset, r.Delay, t2, t3)
		}
	})
}
