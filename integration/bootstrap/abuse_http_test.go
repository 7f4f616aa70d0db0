package bootstrap

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"gate/integration/netlab"
)

var slowLine = regexp.MustCompile(`slowloris (\w+): opened (\d+) closed (\d+) first (\S+) last (\S+)`)

// TestIntegrationAbuseSlowloris: thirty slow requests (under the per-source cap) to each of the gate's
// HTTP servers (bootstrapd's and a /metrics endpoint), trickling their
// header or their body one byte a second: the server lets every one go
// (header: ReadHeaderTimeout 10 s; body: ReadTimeout 30 s) before the
// clients give up after 75 s.
func TestIntegrationAbuseSlowloris(t *testing.T) {
	netlab.Require(t)
	l := netlab.New(t)
	gate, client := l.Host("gate"), l.Host("client")
	l.Link(gate, "eth0", gateAddr+"/24", client, "eth0", "10.78.0.50/24")
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	os.MkdirAll(secrets, 0o700)
	os.WriteFile(filepath.Join(secrets, "token"), []byte("test-token\n"), 0o600)
	os.WriteFile(filepath.Join(secrets, "pw"), []byte("pw\n"), 0o600)
	assets := filepath.Join(dir, "assets")
	os.MkdirAll(filepath.Join(assets, "ipxe"), 0o755)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, []byte(siteYAML), 0o644)
	boot := gate.Start("bootstrapd", nil, netlab.Build(t, "gate/cmd/bootstrapd"), "-config", site, "-secrets", secrets,
		"-state", filepath.Join(dir, "state"), "-metrics", gateAddr+":9104", "-assets", assets)
	if err := boot.WaitFor("msg=ready", 30*time.Second); err != nil {
		t.Fatalf("bootstrapd: %v\n%s", err, boot.Output())
	}
	flood := netlab.Build(t, "gate/integration/flood")
	type run struct {
		name, target, mode, path string
		p                        *netlab.Proc
	}
	runs := []*run{
		{name: "bootstrapd header", target: gateAddr + ":8080", mode: "header", path: "/nocloud/phone-home"},
		{name: "bootstrapd body", target: gateAddr + ":8080", mode: "body", path: "/imager/progress"},
		{name: "metrics header", target: gateAddr + ":9104", mode: "header", path: "/metrics"},
		{name: "metrics body", target: gateAddr + ":9104", mode: "body", path: "/metrics"},
	}
	for _, r := range runs {
		r.p = client.Start(r.name, nil, flood, "-target", r.target, "-n", "30", "-trickle", r.mode, "-path", r.path, "-for", "75s")
	}
	before, _ := boot.RSSKiB()
	for _, r := range runs {
		if err := r.p.WaitFor("slowloris", 2*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", r.name, err, r.p.Output())
		}
		m := slowLine.FindStringSubmatch(r.p.Output())
		if m == nil {
			t.Fatalf("%s: %q", r.name, r.p.Output())
		}
		opened, _ := strconv.Atoi(m[2])
		closed, _ := strconv.Atoi(m[3])
		t.Logf("%s: %d slow connections, %d let go by the server, the first after %s, the last after %s", r.name, opened, closed, m[4], m[5])
		if opened == 0 || closed != opened {
			t.Errorf("%s: the server held %d of %d slow connections for 75 s", r.name, opened-closed, opened)
		}
	}
	after, _ := boot.RSSKiB()
	t.Logf("bootstrapd RSS during the slowloris %d KiB, after %d KiB", before, after)
}
