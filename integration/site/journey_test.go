package site

import (
	"fmt"
	"testing"

	"gate/integration/netlab"
)

// TestJourney is `make e2e`: what a user lives through, on the real gate
// image against real peers, in the plays of Runs: the arm64 Pi image under
// qemu-system-aarch64 -M raspi3b with gate.address static, then dhcp
// (steps 1-7), then the amd64 twin for the re-imaging step. Each step
// prints its outcome and duration; a play stops at its first step that
// doesn't hold, the next play still runs.
func TestJourney(t *testing.T) {
	netlab.Require(t, append(append(Requirements, PiRequirements...), "qemu-system-x86_64", "ssh", "wg", "wireguard-go", "upsc", "chronyd", "curl")...)
	for _, run := range Runs {
		t.Run(run.Name, func(t *testing.T) {
			fmt.Printf("JOURNEY == %s: %s image, gate.address %s\n", run.Name, run.Arch, run.Address)
			RunJourney(t, journeySteps(t, run))
		})
	}
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
