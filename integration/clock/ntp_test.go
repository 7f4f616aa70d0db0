// Package clock tests the gate's NTP client against Debian's chrony.
//
// chronyd runs on loopback with -x: it serves its own clock (local
// stratum 8) and never touches the machine's. The clock daemon itself is
// never run here: it would set the clock of the machine that runs the
// tests. It runs on the gate's image (integration/site).
package clock

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/ntp"
)

// startChrony runs chronyd serving its clock on 127.0.0.1:port.
func startChrony(t *testing.T, port int) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "chrony.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`# an NTP server on the simulated internet: its own clock, stratum 8
local stratum 8
allow 127.0.0.1
bindaddress 127.0.0.1
port %d
cmdport 0
pidfile %s/chronyd.pid
driftfile %s/drift
`, port, dir, dir)), 0o644)
	cmd := exec.Command("chronyd", "-x", "-d", "-u", "root", "-f", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("chronyd:\n%s", out.String())
	})
}

func TestIntegrationNTPAgainstChrony(t *testing.T) {
	netlab.Require(t, "chronyd")
	const port = 11123
	startChrony(t, port)
	var r ntp.Response
	err := netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		r, err = ntp.Query(ctx, fmt.Sprintf("127.0.0.1:%d", port), time.Now)
		return err
	})
	if err != nil {
		t.Fatalf("chronyd never answered: %v", err)
	}
	// Same machine, same clock: the offset is the measurement's noise.
	if r.Stratum != 8 || r.Offset.Abs() > time.Second || r.Delay < 0 {
		t.Errorf("chrony's answer: %+v (want its local stratum 8, offset near 0)", r)
	}
	t.Logf("chrony: stratum %d offset %v delay %v root distance %v", r.Stratum, r.Offset, r.Delay, r.RootDistance)
}
