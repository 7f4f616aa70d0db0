package site

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gate/integration/netlab"
)

// NTPAddr is where StartNTP's server lives on the simulated internet.
var NTPAddr = netip.MustParseAddr("203.0.113.123")

// NTP is Debian's chronyd serving time on the simulated internet.
type NTP struct {
	Host *netlab.Host
	Proc *netlab.Proc
	conf string
	t    testing.TB
}

// StartNTP runs chronyd on the internet at NTPAddr, serving its own clock
// (local stratum 8) to anyone, never touching the machine's clock (-x);
// its pid, drift and sockets live in the test's directory.
func (s *Site) StartNTP() *NTP {
	s.t.Helper()
	netlab.Require(s.t, "chronyd")
	h := s.Hub("ntp", NTPAddr)
	dir := filepath.Join(s.Dir, "chrony")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	conf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`local stratum 8
allow all
port 123
bindaddress %[2]s
cmdport 0
pidfile %[1]s/chronyd.pid
driftfile %[1]s/drift
ntsdumpdir %[1]s
dumpdir %[1]s
`, dir, NTPAddr)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	n := &NTP{Host: h, conf: conf, t: s.t}
	n.Start()
	return n
}

// Start (re)starts chronyd, as after Stop.
func (n *NTP) Start() {
	n.Proc = n.Host.Start("chronyd", nil, "chronyd", "-d", "-x", "-u", "root", "-f", n.conf)
	if err := n.Proc.WaitFor("chronyd version", 10*time.Second); err != nil {
		n.t.Fatalf("chronyd did not start: %v\n%s", err, n.Proc.Output())
	}
}

// Stop stops chronyd: NTP is unreachable until Start.
func (n *NTP) Stop() { n.Proc.Stop() }
