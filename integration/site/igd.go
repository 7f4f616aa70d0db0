package site

import (
	"testing"
	"time"

	"gate/integration/netlab"
)

// StartIGD runs fakeigd on the box (lan0, wan0): its UPnP Internet Gateway
// Device, which reports the box's WAN address and announces its changes
// by UPnP events (Debian's miniupnpd reports no reserved address, and the
// lab has only those).
func (s *Site) StartIGD() *netlab.Proc {
	s.t.Helper()
	return StartIGD(s.t, s.Box, "lan0", "wan0")
}

// StartIGD runs fakeigd in h, on its LAN and WAN interfaces.
func StartIGD(t testing.TB, h *netlab.Host, lan, wan string) *netlab.Proc {
	t.Helper()
	p := h.Start("fakeigd", nil, netlab.Build(t, "gate/integration/site/fakeigd"), "-lan", lan, "-wan", wan)
	if err := p.WaitFor("fakeigd listening", 10*time.Second); err != nil {
		t.Fatal(err, p.Output())
	}
	return p
}
