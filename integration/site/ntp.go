package site

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"gate/integration/netlab"
)

// NTPWAN is the simulated internet's NTP server (Debian's chrony).
var NTPWAN = netip.MustParseAddr("203.0.113.123")

// StartNTP runs Debian's chronyd at NTPWAN on the internet: it serves its
// own clock at stratum 8 and, with -x, never touches the machine's (time
// is not namespaced). The gate's site file names it in time.servers.
func (s *Site) StartNTP() *netlab.Proc {
	s.t.Helper()
	h := s.Hub("ntp", NTPWAN)
	dir := filepath.Join(s.Dir, "chrony")
	os.MkdirAll(dir, 0o755)
	conf := filepath.Join(dir, "chrony.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`local stratum 8
allow all
bindaddress %s
cmdport 0
pidfile %s/chronyd.pid
driftfile %s/drift
`, NTPWAN, dir, dir)), 0o644)
	return h.Start("chronyd", nil, "chronyd", "-x", "-d", "-u", "root", "-f", conf)
}
