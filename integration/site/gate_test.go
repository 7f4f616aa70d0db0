package site

import (
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
