// Package ntp is a small SNTP client (RFC 4330, the client side of RFC
// 5905): one request, one answer, the clock offset and the round-trip
// delay it implies. It checks what a client must before trusting an answer:
// a server-mode reply to this very request (its origin timestamp echoes
// ours), a stratum of 1 to 15 (0 is a kiss-o'-death: the server says
// stop), a clock the server itself calls synchronised (leap indicator not
// 3), and timestamps that are not zero.
package ntp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// Port is NTP's UDP port.
const Port = "123"

// packetLen is the size of an NTP header without extensions.
const packetLen = 48

// ntpEpochOffset is the seconds from 1900-01-01 (NTP's era 0) to 1970.
const ntpEpochOffset = 2208988800

// Response is what a server's answer says, with the client's view of it.
type Response struct {
	Server  string        // the address asked
	Offset  time.Duration // add to the local clock to get the server's
	Delay   time.Duration // round trip, less the server's own processing
	Stratum uint8
	Leap    uint8  // 0 none, 1 +1s, 2 -1s at the end of the day
	RefID   uint32 // the server's reference (for stratum 1, four ASCII letters)
	// RootDistance bounds the server's own error: root delay / 2 + root
	// dispersion.
	RootDistance time.Duration
}

// ErrKissOfDeath is returned when the server answers with stratum 0: it
// asks the client to stop (RATE) or to go away (DENY, RSTR).
var ErrKissOfDeath = errors.New("kiss-o'-death")

// Query sends one request to server (host or host:port; the port defaults
// to 123) and returns what its answer says. now is the local clock (time.Now
// outside tests).
func Query(ctx context.Context, server string, now func() time.Time) (Response, error) {
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(server, Port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Response{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(now().Add(5 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// The transmit timestamp of the request is echoed as the answer's
	// origin timestamp: random bits make an answer to someone else's
	// request (or a spoofed one) fail the check. RFC 5905 allows a client
	// to put anything there.
	var req [packetLen]byte
	req[0] = 0<<6 | 4<<3 | 3 // leap 0, version 4, mode 3 (client)
	if _, err := rand.Read(req[40:48]); err != nil {
		return Response{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	t1 := now()
	if _, err := conn.Write(req[:]); err != nil {
		return Response{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	buf := make([]byte, 1024)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return Response{}, fmt.Errorf("ntp %s: no answer: %w", server, err)
		}
		t4 := now()
		r, err := Parse(buf[:n], req[40:48], t1, t4)
		if errors.Is(err, errNotOurs) {
			continue // a late answer to an earlier request: wait on
		}
		if err != nil {
			return Response{}, fmt.Errorf("ntp %s: %w", server, err)
		}
		r.Server = conn.RemoteAddr().String()
		return r, nil
	}
}

var errNotOurs = errors.New("answer to another request (origin timestamp differs)")

// Parse checks an answer to the request whose transmit timestamp was
// origin, sent at t1 and received at t4 by the local clock, and computes
// the offset and delay (RFC 5905 section 8).
func Parse(b []byte, origin []byte, t1, t4 time.Time) (Response, error) {
	if len(b) < packetLen {
		return Response{}, fmt.Errorf("answer of %d bytes (at least %d)", len(b), packetLen)
	}
	leap, version, mode := b[0]>>6, (b[0]>>3)&7, b[0]&7
	if mode != 4 {
		return Response{}, fmt.Errorf("answer in mode %d (4, server)", mode)
	}
	if version < 1 || version > 4 {
		return Response{}, fmt.Errorf("answer of NTP version %d", version)
	}
	if string(b[24:32]) != string(origin) {
		return Response{}, errNotOurs
	}
	r := Response{Leap: leap, Stratum: b[1], RefID: binary.BigEndian.Uint32(b[12:16])}
	if r.Stratum == 0 {
		return Response{}, fmt.Errorf("%w: %q", ErrKissOfDeath, b[12:16])
	}
	if r.Stratum > 15 {
		return Response{}, fmt.Errorf("server unsynchronised (stratum %d)", r.Stratum)
	}
	if leap == 3 {
		return Response{}, errors.New("server unsynchronised (leap indicator 3)")
	}
	rx, tx := b[32:40], b[40:48]
	if isZero(rx) || isZero(tx) {
		return Response{}, errors.New("answer with a zero receive or transmit timestamp")
	}
	t2, t3 := toTime(rx), toTime(tx)
	if t3.Before(t2) {
		return Response{}, fmt.Errorf("server sent (%s) before it received (%s)", t3.Format(time.RFC3339Nano), t2.Format(time.RFC3339Nano))
	}
	r.Offset = (t2.Sub(t1) + t3.Sub(t4)) / 2
	r.Delay = t4.Sub(t1) - t3.Sub(t2)
	if r.Delay < 0 {
		r.Delay = 0
	}
	r.RootDistance = shortDuration(b[4:8])/2 + shortDuration(b[8:12])
	return r, nil
}

func isZero(b []byte) bool { return binary.BigEndian.Uint64(b) == 0 }

// toTime reads a 64-bit NTP timestamp. Era 0 ends in 2036: a seconds
// value below 2^31 is taken as era 1, so the client keeps working past
// February 2036 (RFC 5905 section 6's usual reading).
func toTime(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint32(b[0:4]))
	frac := int64(binary.BigEndian.Uint32(b[4:8]))
	if sec < 1<<31 {
		sec += 1 << 32
	}
	return time.Unix(sec-ntpEpochOffset, (frac*1e9)>>32)
}

// shortDuration reads NTP's 32-bit short format (16.16 seconds).
func shortDuration(b []byte) time.Duration {
	v := int64(binary.BigEndian.Uint32(b))
	return time.Duration(v * int64(time.Second) >> 16)
}

// appendTimestamp writes t as a 64-bit NTP timestamp (for tests and
// servers).
func appendTimestamp(b []byte, t time.Time) []byte {
	sec := uint64(t.Unix()+ntpEpochOffset) & 0xffffffff
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return binary.BigEndian.AppendUint64(b, sec<<32|frac)
}
