package site

import (
	"testing"

	"gate/integration/netlab"
)

// TestJourney is `make e2e`: what a user lives through, on the real gate
// image (amd64 twin under QEMU) against real peers. Each step prints its
// outcome and duration; the run fails on the first step that doesn't hold.
func TestJourney(t *testing.T) {
	netlab.Require(t, append(Requirements, "qemu-system-x86_64", "ssh", "wg", "wireguard-go", "upsc", "chronyd")...)
	RunJourney(t, journeySteps(t))
}

func TestRunJourneyReports(t *testing.T) {
	res := RunJourney(t, []Step{
		{Name: "a", Run: func() error { return nil }},
		{Name: "b", Missing: func() string { return "not landed" }},
		{Name: "c", Run: func() error { return nil }},
	})
	want := []string{"passed", "MISSING", "passed"}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("step %s: %s, want %s", r.Name, r.Outcome, want[i])
		}
	}
}
