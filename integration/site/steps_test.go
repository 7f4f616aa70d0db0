package site

import "testing"

// journeySteps are the six steps of issue "Site in a box". A step whose
// daemon (or whose journey code) has not landed is reported MISSING.
func journeySteps(t *testing.T) []Step {
	notWritten := func(needs ...string) func() string {
		return func() string {
			for _, n := range needs {
				if m := Placeholder(n); m != "" {
					return m
				}
			}
			return "the journey code for this step is not written yet"
		}
	}
	return []Step{
		{Name: "1. boot: every service ready", Missing: notWritten("cmd/vpn", "cmd/dyndns", "cmd/upsd", "cmd/bootstrapd", "cmd/bastion")},
		{Name: "2. tunnel up to the hub", Missing: notWritten("cmd/vpn")},
		{Name: "3. ssh -J admin@hub:2222 ceph-1", Missing: notWritten("cmd/vpn", "cmd/bastion")},
		{Name: "4. box address changes: DNS follows, tunnel back", Missing: notWritten("cmd/dyndns", "cmd/vpn")},
		{Name: "5. UPS critical: compute-1, then ceph-1..3 down; UPS off", Missing: notWritten("cmd/upsd")},
		{Name: "6. a host re-imaged over PXE, phoned home", Missing: notWritten("cmd/bootstrapd")},
	}
}
