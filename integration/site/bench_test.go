package site

import (
	"testing"

	"gate/integration/netlab"
)

// TestSideBySidePi measures the real Pi image (`gate image --arch arm64`)
// under qemu-system-aarch64 -M raspi3b (TCG) in the simulated site, from a
// cold boot with the clock at 1970 (no RTC), the hub already up: QEMU
// start to the kernel running /gokrazy/init, to every daemon ready, to
// the tunnel up (the hub reaches the gate through it; the hub's name
// resolved through the box's DNS). The amd64 twin's boot is beside it in
// integration/image's TestSideBySideImage.
func TestSideBySidePi(t *testing.T) {
	netlab.Bench(t, append(append(Requirements, PiRequirements...), "wg", "wireguard-go", "chronyd", "curl", "ssh", "upsc")...)
	j := &journey{t: t, run: Runs[0]}
	if err := j.boot(); err != nil {
		t.Fatal(err)
	}
	if err := j.tunnel(); err != nil {
		t.Fatal(err)
	}
	netlab.Report(t, "pi image (raspi3b, TCG): QEMU start to the kernel running /gokrazy/init", j.initAt.Sub(j.poweredOn).Seconds(), "s")
	netlab.Report(t, "pi image (raspi3b, TCG): QEMU start to every daemon ready", j.readyAt.Sub(j.poweredOn).Seconds(), "s")
	netlab.Report(t, "pi image (raspi3b, TCG): QEMU start to the tunnel up, clock at 1970", j.tunnelAt.Sub(j.poweredOn).Seconds(), "s")
}
