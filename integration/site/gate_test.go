package site

import (
	"net/netip"
	"strings"
	"testing"
)

func TestReadyBeforeFirewall(t *testing.T) {
	const (
		fw   = "level=INFO msg=ready daemon=firewall table=x\n"
		lr   = "level=INFO msg=ready daemon=lanroute interface=eth0\n"
		clk  = "level=INFO msg=ready daemon=clock servers=1\n"
		bast = "level=INFO msg=ready daemon=bastion listen=x\n"
		boot = "[    0.000000] Linux version 6.12.47-v8\n"
	)
	for _, tc := range []struct {
		name, out string
		want      string
	}{
		{"firewall first", boot + lr + fw + clk + bast, ""},
		{"lanroute does not listen", lr + fw + clk, ""},
		{"the first boot without it (seen before the fix)", boot + lr + clk + bast + fw, "clock bastion"},
		{"only the last boot counts", boot + clk + fw + boot + fw + bast, ""},
		{"the last boot late", boot + fw + clk + boot + bast + fw, "bastion"},
		{"no firewall line at all", clk, "clock"},
	} {
		if got := strings.Join(readyBeforeFirewall(tc.out), " "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBoxFollowed(t *testing.T) {
	const (
		subVPN = `level=INFO msg="following the box's WAN address" daemon=vpn box=192.168.1.1:5000 events=subscribed` + "\n"
		subDyn = `level=INFO msg="following the box's WAN address" daemon=dyndns box=192.168.1.1:5000 events=subscribed` + "\n"
		chVPN  = `level=INFO msg="the box's WAN address changed" daemon=vpn from=203.0.113.2 to=203.0.113.3 via=event` + "\n"
		chDyn  = `level=INFO msg="the box's WAN address changed" daemon=dyndns from=203.0.113.2 to=203.0.113.3 via=poll` + "\n"
		chOld  = `level=INFO msg="the box's WAN address changed" daemon=dyndns from=203.0.113.9 to=203.0.113.2 via=event` + "\n"
		noBox  = `level=INFO msg="no UPnP box to follow: a new WAN address is seen only by the daemon's own checks" daemon=vpn` + "\n"
		// What the daemon logs (publicip.UnfilteredWarning), as slog's
		// text handler writes it.
		unfiltered = `level=WARN msg="SSDP answers are heard unfiltered: a LAN host flooding them can delay finding the box" daemon=dyndns err="SSDP: filtering answers by source: protocol not available"` + "\n"
	)
	wan := netip.MustParseAddr("203.0.113.3")
	for _, tc := range []struct {
		name, console   string
		found, followed bool // boxFound's and boxFollowed's verdicts
	}{
		{"both followed", subVPN + subDyn + chDyn + chVPN, true, true},
		{"both subscribed, no change seen yet", subVPN + subDyn, true, false},
		{"vpn found no box", noBox + subDyn + chDyn, false, false},
		{"dyndns saw another change", subVPN + subDyn + chVPN + chOld, true, false},
		{"nothing", "", false, false},
		{"the kernel refused the SSDP filter", subVPN + unfiltered + subDyn + chDyn + chVPN, false, false},
	} {
		if err := boxFound(tc.console); (err == nil) != tc.found {
			t.Errorf("%s: boxFound: %v, want ok=%v", tc.name, err, tc.found)
		}
		if err := boxFollowed(tc.console, wan); (err == nil) != tc.followed {
			t.Errorf("%s: boxFollowed: %v, want ok=%v", tc.name, err, tc.followed)
		}
	}
}
