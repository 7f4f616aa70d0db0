package bootstrap

import (
	"flag"
	"net"
	"net/netip"
	"testing"
)

var (
	floodFrom = flag.String("flood.from", "", "first source address of the flood (TestTFTPFloodHelper)")
	floodN    = flag.Int("flood.n", 0, "how many consecutive source addresses")
	floodPer  = flag.Int("flood.per", 1, "requests per source address")
)

// TestTFTPFloodHelper sends read requests for undionly.kpxe with timeout
// 255 to 10.79.0.1:69 from flood.n addresses starting at flood.from,
// flood.per from each, and never answers (the sockets close at once, as
// spoofed sources would never answer). A helper process; skips otherwise.
func TestTFTPFloodHelper(t *testing.T) {
	if *floodFrom == "" {
		t.Skip("helper")
	}
	a := netip.MustParseAddr(*floodFrom)
	rrq := append([]byte{0, 1}, "undionly.kpxe\x00octet\x00timeout\x00255\x00"...)
	to := &net.UDPAddr{IP: net.IPv4(10, 79, 0, 1), Port: 69}
	for range *floodN {
		for range *floodPer {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: a.AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			c.WriteToUDP(rrq, to)
			c.Close()
		}
		a = a.Next()
	}
	t.Log("flood sent")
}
