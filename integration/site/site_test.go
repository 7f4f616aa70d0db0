package site

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
)

// TestIntegrationSiteHarness checks the simulated site itself: NAT from
// the LAN to the internet through the box, real sshd on a server, the NUT
// source following its .dev file.
func TestIntegrationSiteHarness(t *testing.T) {
	netlab.Require(t, "ssh", "ssh-keygen", "upsc", "ping")
	s := New(t, Options{DHCP: true})
	s.Hub("hub1", Hub1WAN)

	c1 := s.Server("compute-1")
	if _, err := c1.Host.Run("ping", "-c1", "-W2", Hub1WAN.String()); err != nil {
		t.Fatalf("LAN → internet through the box's NAT: %v", err)
	}

	key := filepath.Join(s.Dir, "admin")
	if out, err := c1.Host.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); err != nil {
		t.Fatal(out, err)
	}
	pub, _ := os.ReadFile(key + ".pub")
	ceph1 := s.Server("ceph-1")
	s.StartSSHD(ceph1, []string{strings.TrimSpace(string(pub))})
	out, err := c1.Host.Run("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "root@"+ceph1.IP.String(), "hostname; echo via-ssh")
	if err != nil || !strings.Contains(out, "via-ssh") {
		t.Fatalf("ssh to ceph-1: %v\n%s", err, out)
	}

	src := s.StartNUTSource("mon", "secret")
	read := func() string { st, _ := src.Status(); return st }
	if got := read(); got != "OL" {
		t.Fatalf("ups.status %q, want OL", got)
	}
	src.Set("OB LB", 10, 60)
	if err := netlab.Eventually(20*time.Second, 500*time.Millisecond, func() error {
		if got := read(); got != "OB LB" {
			return &statusErr{got}
		}
		return nil
	}); err != nil {
		t.Fatalf("dummy-ups did not follow its .dev file: %v", err)
	}
}

type statusErr struct{ got string }

func (e *statusErr) Error() string { return "ups.status " + e.got }

func TestRestartingServices(t *testing.T) {
	page := `<table><tr><th>path</th></tr>
<tr>
<td><a href="/status?path=%2Fgokrazy%2Fntp">/gokrazy/ntp</a></td>
<td>
<span class="label label-danger">restarting</span>
</td>
<td class="lastlog">
<small>stderr: </small>2026/01/01 fork/exec /gokrazy/ntp: permission denied &amp; more<br/>
</td>
</tr>
<tr>
<td><a href="/status?path=%2Fuser%2Fvpn">/user/vpn</a></td>
<td>
<span class="label label-success">running</span>
</td>
<td class="lastlog">
<small>stderr: </small>fine<br/>
</td>
</tr></table>`
	got := RestartingServices(page)
	want := "/gokrazy/ntp restarting: 2026/01/01 fork/exec /gokrazy/ntp: permission denied & more"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("RestartingServices = %q, want [%q]", got, want)
	}
	if got := RestartingServices("<html>no table</html>"); len(got) != 0 {
		t.Errorf("a page without services: %q", got)
	}
}

func TestEmulatedCmdline(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"console=tty1 console=serial0,115200 root=PARTUUID=f4103202-02 init=/gokrazy/init rootwait panic=10 oops=panic      \n",
			"root=PARTUUID=f4103202-02 init=/gokrazy/init rootwait panic=10 oops=panic console=ttyAMA0,115200 initcall_blacklist=bcm2835_wdt_driver_init"},
		{"root=/dev/mmcblk0p2", "root=/dev/mmcblk0p2 console=ttyAMA0,115200 initcall_blacklist=bcm2835_wdt_driver_init"},
	} {
		if got := EmulatedCmdline(c.in); got != c.want {
			t.Errorf("EmulatedCmdline(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestInet6(t *testing.T) {
	if got := Inet6(Hub1WAN).String(); got != "2001:db8:ff::a" {
		t.Errorf("Inet6(%s) = %s", Hub1WAN, got)
	}
	if got := publicip6(LANPrefix6, "::2").String(); got != "2001:db8:1::2" {
		t.Errorf("publicip6 = %s", got)
	}
}

func TestPageText(t *testing.T) {
	for _, c := range []struct{ page, want string }{
		{"", ""},
		{"plain", "plain"},
		{"<h1>dhcp</h1><pre>line 1<br>line &lt;2&gt;<br/>\n\n  line 3  </pre>", "dhcp\nline 1\nline <2>\nline 3"},
		{`<tr><td class="x">a</td><td>b</td></tr><tr><td>c</td></tr>`, "ab\nc"},
		{"cut <b", "cut"},
	} {
		if got := PageText(c.page); got != c.want {
			t.Errorf("PageText(%q) = %q, want %q", c.page, got, c.want)
		}
	}
}
