// Package wol sends Wake-on-LAN magic packets: six 0xff bytes, then the
// target's MAC sixteen times, in a UDP datagram to the LAN's broadcast
// address, port 9 (discard), which a sleeping NIC with WoL enabled scans
// every frame for.
package wol

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Magic returns the magic packet for mac.
func Magic(mac net.HardwareAddr) ([]byte, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("wol: %q is not a 6-byte MAC", mac.String())
	}
	b := bytes.Repeat([]byte{0xff}, 6)
	for range 16 {
		b = append(b, mac...)
	}
	return b, nil
}

// Broadcast is the directed broadcast address of a LAN prefix.
func Broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := range 4 {
		for b := range 8 {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	return netip.AddrFrom4(a)
}

// Send sends the magic packet for mac to bcast, port 9.
func Send(ctx context.Context, bcast netip.Addr, mac net.HardwareAddr) error {
	pkt, err := Magic(mac)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp4", netip.AddrPortFrom(bcast, 9).String())
	if err != nil {
		return fmt.Errorf("wol: %s: %w", bcast, err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		return fmt.Errorf("wol: magic packet for %s to %s: %w", mac, bcast, err)
	}
	return nil
}
