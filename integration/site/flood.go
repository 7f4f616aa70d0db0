package site

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// Flooder makes a namespace on the LAN with n addresses from
// 192.168.1.150 on, for the abuse tests; it returns them.
func (s *Site) Flooder(n int) (*netlab.Host, []string) {
	h := s.Lab.Host("flood")
	s.Lab.Attach(s.Switch, "br0", h, "eth0", "192.168.1.150/24")
	srcs := []string{"192.168.1.150"}
	for i := 1; i < n; i++ {
		a := fmt.Sprintf("192.168.1.%d", 150+i)
		h.MustRun("ip", "addr", "add", a+"/24", "dev", "eth0")
		srcs = append(srcs, a)
	}
	return h, srcs
}

// FloodReport is what integration/flood saw.
type FloodReport struct {
	Line                         string
	Opened, Held, Closed, Failed int
}

var floodLine = regexp.MustCompile(`flood: opened (\d+) held (\d+) closed (\d+) failed (\d+)`)

// Flood opens n connections to target from srcs (round robin) and holds
// them without a word until the returned process is killed.
func Flood(t testing.TB, h *netlab.Host, target string, n int, srcs []string) (*netlab.Proc, FloodReport) {
	t.Helper()
	p := h.Start("flood", nil, netlab.Build(t, "gate/integration/flood"), "-target", target, "-n", strconv.Itoa(n), "-src", strings.Join(srcs, ","))
	if err := p.WaitFor("flood: opened", 2*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	m := floodLine.FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no flood report in %q", p.Output())
	}
	r := FloodReport{Line: m[0]}
	for i, f := range []*int{&r.Opened, &r.Held, &r.Closed, &r.Failed} {
		*f, _ = strconv.Atoi(m[i+1])
	}
	return p, r
}

// RSS returns p's resident set size in KiB, failing the test if it cannot.
func RSS(t testing.TB, p *netlab.Proc) int {
	t.Helper()
	kib, err := p.RSSKiB()
	if err != nil {
		t.Fatal(err)
	}
	return kib
}
