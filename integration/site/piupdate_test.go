package site

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestPiUpdate: `gate update` from one build to the next on the
// arm64 Pi image under raspi3b (see journey step 9, update): the next
// build goes to the inactive root over the LAN, cmdline.txt is switched,
// the Pi restarts from the other root and answers with the new build,
// every daemon ready, and /perm survived (the clock starts from the time
// it saved there). Its own test, outside `make e2e` and `make test`
// (`make pi-update` runs it): the emulated Pi's USB NIC carries the upload
// at 30 to 115 KB/s, and the update sends some 60 MiB (the boot
// partition's used part, 48 MiB of it the kernel, and the root).
func TestPiUpdate(t *testing.T) {
	if os.Getenv("GATE_PI_UPDATE") != "1" {
		t.Skip("the Pi's update over the emulated USB NIC takes 10 to 35 minutes: run by make pi-update (GATE_PI_UPDATE=1)")
	}
	netlab.Require(t, append(append(Requirements, PiRequirements...), "chronyd", "curl")...)
	j := &journey{t: t, run: Run{Name: "pi-update", Arch: "arm64", Address: "static"}}
	j.s = New(t, Options{DHCP: true, DNS: map[string]netip.Addr{ntpName: NTPAddr}})
	j.dir = j.s.Dir
	j.ntp = j.s.StartNTP()
	j.gateCLI = netlab.Build(t, "gate/gate")
	j.siteFile = filepath.Join(j.dir, "site.yaml")
	j.secrets = filepath.Join(j.dir, "secrets")
	site := fmt.Sprintf(`site: {name: pi-update}
lan: {subnet: %s, gateway: %s, dns: [%s]}
gate: {hostname: gate-1, address: %s/24, model: rpi3}
time: {servers: [%s]}
ups: {source: "nut://%s/ups"}
`, LANPrefix, BoxLAN, BoxLAN, GateLAN, ntpName, UPSSourceLAN)
	if err := os.WriteFile(j.siteFile, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runIn(j.dir, j.gateCLI, "secrets", "init", "-c", j.siteFile); err != nil {
		t.Fatalf("gate secrets init: %v\n%s", err, out)
	}
	j.daemons = []string{"clock", "upsd"}
	img := filepath.Join(j.dir, "gate.img")
	j.s.BuildImageArch(j.gateCLI, j.siteFile, "arm64", img)
	pb, err := PreparePi(img, filepath.Join(j.dir, "pi"))
	if err != nil {
		t.Fatal(err)
	}
	j.gate = j.s.BootPi(pb, piMAC)
	if err := j.gate.WaitReady(j.daemons, 6*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every start of the clock daemon logs its floor: the time saved on
	// /perm, or the image's source date (older than this test).
	before := time.Now().Truncate(time.Second)
	start := time.Now()
	if err := j.update(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := j.checkBuild("e2e-next-build"); err != nil {
		t.Error(err)
	}
	ready := lineWith(j.gate.Proc.Output(), "msg=ready", "daemon=clock")
	floor, err := time.Parse(time.RFC3339, field(ready, "floor"))
	if err != nil || floor.Before(before) {
		t.Errorf("after the update the clock started from %q, not from the time it saved on /perm before the reboot (at or after %s): /perm did not survive\n%s", field(ready, "floor"), before.UTC().Format(time.RFC3339), ready)
	}
	fmt.Printf("JOURNEY    pi-update: %.0fs from gate update to every daemon ready on the new build; clock floor %s from /perm\n", took.Seconds(), field(ready, "floor"))
}

// checkBuild asks gokrazy's status (GET / as JSON, with the password)
// which build runs.
func (j *journey) checkBuild(want string) error {
	auth, err := GokrazyAuth(j.dir, j.secrets)
	if err != nil {
		return err
	}
	out, err := j.s.Box.Output("curl", "-s", "-m", "10", "-K", auth, "-H", "Accept: application/json", "http://"+GateLAN.String()+"/")
	if err != nil {
		return fmt.Errorf("gokrazy's status: %v", err)
	}
	var st struct{ BuildTimestamp string }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.BuildTimestamp != want {
		return fmt.Errorf("the gate reports build %q (%v), want %q", st.BuildTimestamp, err, want)
	}
	return nil
}

// field is the value of key=value in a log line ("" if absent).
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
