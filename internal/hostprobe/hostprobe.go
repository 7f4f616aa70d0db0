// Package hostprobe tells whether a LAN host still answers: one probe is a
// TCP connection attempt to a port (an accepted connection or a refusal
// both come from a running kernel) and, when the process may open a raw
// ICMP socket (root on the gate), an ICMP echo request, sent together;
// the host answers when either gets an answer before the timeout. A host
// that is powered off answers neither: its address no longer resolves on
// the LAN (ARP) or the packets are dropped.
package hostprobe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// Prober probes hosts.
type Prober struct {
	// Port is the TCP port tried (default 22, the hosts' SSH).
	Port int
	// Timeout bounds one probe (default 300ms).
	Timeout time.Duration

	seq atomic.Uint32
}

// Answers probes addr once; it reports whether the host answered.
func (p *Prober) Answers(ctx context.Context, addr netip.Addr) bool {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 300 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := make(chan bool, 2)
	go func() { res <- p.tcp(ctx, addr) }()
	go func() { res <- p.echo(ctx, addr) }()
	for range 2 {
		if <-res {
			return true
		}
	}
	return false
}

// tcp reports whether a connection to the port was accepted or refused.
func (p *Prober) tcp(ctx context.Context, addr netip.Addr) bool {
	port := p.Port
	if port == 0 {
		port = 22
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(port)))
	if err == nil {
		c.Close()
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// echo sends one ICMP echo request and waits for its reply; false when
// no raw socket can be opened (not root) or nothing came back.
func (p *Prober) echo(ctx context.Context, addr netip.Addr) bool {
	if !addr.Is4() {
		return false
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return false
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	id := os.Getpid() & 0xffff
	seq := int(p.seq.Add(1) & 0xffff)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("gate-hostprobe")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	dst := &net.IPAddr{IP: addr.AsSlice()}
	if _, err := c.WriteTo(b, dst); err != nil {
		return false
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(dst.IP) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return true
		}
	}
}
