// Package dyndns tests cmd/dyndns against real peers: Debian's miniupnpd
// on the ISP box reporting the box's WAN address, and BIND9 serving the
// zone with a TSIG key and an update policy.
package dyndns

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

var dnsAddr = netip.MustParseAddr("203.0.113.53")

type lab struct {
	t      *testing.T
	s      *site.Site
	gate   *netlab.Host
	dir    string
	secret string
	named  *netlab.Proc
}

func newLab(t *testing.T) *lab {
	netlab.Require(t, "/usr/sbin/named", "miniupnpd")
	s := site.New(t, site.Options{})
	l := &lab{t: t, s: s, dir: s.Dir}
	l.gate = s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", l.gate, "eth0", "192.168.1.2/24")
	l.gate.MustRun("ip", "route", "add", "default", "via", site.BoxLAN.String())

	// The box's UPnP IGD.
	conf := filepath.Join(l.dir, "miniupnpd.conf")
	os.WriteFile(conf, []byte("ext_ifname=wan0\nlistening_ip=lan0\nport=5000\nenable_natpmp=no\nenable_upnp=yes\nsecure_mode=yes\nsystem_uptime=yes\nuuid=43a58025-d9c0-4e02-9202-a3b36caf57de\nallow 1024-65535 192.168.1.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"), 0o644)
	up := s.Box.Start("miniupnpd", nil, "miniupnpd", "-d", "-f", conf, "-P", filepath.Join(l.dir, "miniupnpd.pid"))
	if err := up.WaitFor("HTTP listening", 10*time.Second); err != nil {
		t.Fatal(err, up.Output())
	}

	// The authoritative server.
	ns := s.Hub("dns", dnsAddr)
	key := make([]byte, 32)
	rand.Read(key)
	l.secret = base64.StdEncoding.EncodeToString(key)
	zdir := filepath.Join(l.dir, "named")
	os.MkdirAll(zdir, 0o755)
	os.WriteFile(filepath.Join(zdir, "example.org.zone"), []byte(`$TTL 60
@ IN SOA ns.example.org. hostmaster.example.org. 1 60 60 600 60
@ IN NS ns.example.org.
ns IN A 203.0.113.53
`), 0o644)
	os.WriteFile(filepath.Join(zdir, "named.conf"), []byte(fmt.Sprintf(`options {
	directory "%[1]s";
	listen-on { %[2]s; };
	listen-on-v6 { none; };
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	recursion no;
	dnssec-validation no;
};
key "gate-key." { algorithm hmac-sha256; secret "%[3]s"; };
zone "example.org" {
	type primary;
	file "%[1]s/example.org.zone";
	update-policy { grant gate-key. name home.example.org. A AAAA; };
};
`, zdir, dnsAddr, l.secret)), 0o644)
	l.named = ns.Start("named", nil, "/usr/sbin/named", "-g", "-u", "root", "-c", filepath.Join(zdir, "named.conf"))
	if err := l.named.WaitFor("running", 20*time.Second); err != nil {
		t.Fatal(err, l.named.Output())
	}
	return l
}

// startDyndns runs cmd/dyndns in the gate with the given TSIG secret and
// address sources (YAML flow list).
func (l *lab) startDyndns(name, secret, sources string) *netlab.Proc {
	dir := filepath.Join(l.dir, name)
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "tsig.key"), []byte(secret), 0o600)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
dyndns:
  interval: 5s
  sources: %s
  provider: {type: rfc2136, server: "%s:53", zone: example.org, tsig_key: gate-key, tsig_secret: "file:tsig.key"}
  records: [{name: home.example.org, ttl: 60s}]
`, sources, dnsAddr)), 0o644)
	p := l.gate.Start("dyndns-"+name, nil, netlab.Build(l.t, "gate/cmd/dyndns"), "-config", site, "-secrets", filepath.Join(dir, "secrets"),
		"-state", filepath.Join(dir, "state"), "-metrics", "")
	if err := p.WaitFor("msg=ready", 10*time.Second); err != nil {
		l.t.Fatal(err, p.Output())
	}
	return p
}

// record asks BIND what home.example.org holds.
func (l *lab) record() string {
	out, err := l.s.Box.Output("dig", "+short", "@"+dnsAddr.String(), "home.example.org", "A")
	if err != nil {
		// dig may be missing: ask with miekg/dns from inside the box instead.
		return ""
	}
	return strings.TrimSpace(out)
}

// echoSources is an HTTP "what is my IP" service on the simulated
// internet (the VPS): it sees the box's WAN address through the NAT.
func (l *lab) echoSources() string {
	echo := l.s.Hub("echo", netip.MustParseAddr("203.0.113.80"))
	p := echo.Start("echoip", nil, netlab.Build(l.t, "gate/integration/dyndns/echoip"), "-listen", "203.0.113.80:8053")
	if err := p.WaitFor("listening", 10*time.Second); err != nil {
		l.t.Fatal(err)
	}
	return "[{type: http, url: \"http://203.0.113.80:8053/ip\"}]"
}

func TestIntegrationDynDNS(t *testing.T) {
	netlab.Require(t, "dig")
	l := newLab(t)
	p := l.startDyndns("good", l.secret, l.echoSources())
	follow := func(want string) time.Duration {
		start := time.Now()
		if err := netlab.Eventually(60*time.Second, 200*time.Millisecond, func() error {
			if got := l.record(); got != want {
				return fmt.Errorf("home.example.org A = %q, want %s", got, want)
			}
			return nil
		}); err != nil {
			t.Fatalf("%v\n%s", err, site.Tail(p.Output(), 20))
		}
		return time.Since(start)
	}
	d := follow(site.BoxWAN.String())
	t.Logf("record published %s after start", d.Round(time.Millisecond))

	// The ISP gives the line a new address: the record follows.
	next := netip.MustParseAddr("203.0.113.3")
	l.s.SetBoxWAN(site.BoxWAN, next)
	d = follow(next.String())
	t.Logf("record followed the new address in %s", d.Round(time.Millisecond))
	p.Stop()

	// A wrong TSIG key: refused by BIND, reported, and not retried in a loop.
	wrong := make([]byte, 32)
	rand.Read(wrong)
	bad := l.startDyndns("wrongkey", base64.StdEncoding.EncodeToString(wrong), "[{type: http, url: \"http://203.0.113.80:8053/ip\"}]")
	if err := bad.WaitFor("record blocked until the site file changes", 30*time.Second); err != nil {
		t.Fatal(err, bad.Output())
	}
	time.Sleep(12 * time.Second) // two more intervals
	if n := strings.Count(bad.Output(), "record blocked"); n != 1 {
		t.Errorf("the refused update was retried: %d blocked lines\n%s", n, bad.Output())
	}
	if n := strings.Count(l.named.Output(), "request has invalid signature") + strings.Count(l.named.Output(), "bad signature"); n > 1 {
		t.Errorf("BIND saw %d signed attempts with the wrong key, want 1", n)
	}

}

// TestIntegrationUPnPNoPublicAddress: Debian's miniupnpd, like a real box
// behind another NAT, answers no external address for a WAN address in a
// reserved range (and these tests may only use such ranges): the gate must
// say so clearly and publish nothing.
func TestIntegrationUPnPNoPublicAddress(t *testing.T) {
	l := newLab(t)
	p := l.startDyndns("upnp", l.secret, "[{type: upnp}]")
	if err := p.WaitFor("carrier-grade NAT", 30*time.Second); err != nil {
		t.Fatal(err, p.Output())
	}
	if !strings.Contains(p.Output(), "the box reports no public WAN address") || !strings.Contains(p.Output(), "not publishing") {
		t.Errorf("unclear report:\n%s", p.Output())
	}
	if got := l.record(); got != "" {
		t.Errorf("published %q from a box without a public address", got)
	}
}
