package wol

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestMagic(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:00:01:02")
	b, err := Magic(mac)
	if err != nil || len(b) != 102 || !bytes.Equal(b[:6], bytes.Repeat([]byte{0xff}, 6)) {
		t.Fatalf("%x %v", b, err)
	}
	for i := range 16 {
		if !bytes.Equal(b[6+6*i:12+6*i], mac) {
			t.Fatalf("repetition %d: %x", i, b[6+6*i:12+6*i])
		}
	}
	if _, err := Magic(net.HardwareAddr{1, 2, 3}); err == nil {
		t.Error("a 3-byte MAC was accepted")
	}
	for p, want := range map[string]string{"192.168.1.0/24": "192.168.1.255", "10.1.0.0/16": "10.1.255.255", "10.0.0.17/28": "10.0.0.31"} {
		if got := Broadcast(netip.MustParsePrefix(p)); got.String() != want {
			t.Errorf("Broadcast(%s) = %s, want %s", p, got, want)
		}
	}
}
