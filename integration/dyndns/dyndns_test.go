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

var dnsAddr = site.DNSAddr

type lab struct {
	t      *testing.T
	s      *site.Site
	gate   *netlab.Host
	dir    string
	secret string
	named  *netlab.Proc
	bind   *site.BIND
}

func newLab(t *testing.T) *lab { return newLabBox(t, "miniupnpd") }

// newLabBox is the lab with the box's IGD: Debian's "miniupnpd", or
// "fakeigd", which announces WAN changes for the reserved addresses the
// lab uses, or "none".
func newLabBox(t *testing.T, igd string) *lab {
	netlab.Require(t, "/usr/sbin/named", "miniupnpd")
	s := site.New(t, site.Options{})
	l := &lab{t: t, s: s, dir: s.Dir}
	l.gate = s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", l.gate, "eth0", "192.168.1.2/24")
	l.gate.MustRun("ip", "route", "add", "default", "via", site.BoxLAN.String())

	l.bind = s.StartBIND("example.org", "home.example.org", "gate-key", site.NewTSIGSecret())
	l.secret = l.bind.Secret
	l.named = l.bind.Proc
	switch igd {
	case "fakeigd":
		s.StartIGD()
		return l
	case "none":
		return l
	}
	// The box's UPnP IGD.
	conf := filepath.Join(l.dir, "miniupnpd.conf")
	os.WriteFile(conf, []byte("ext_ifname=wan0\nlistening_ip=lan0\nport=5000\nenable_natpmp=no\nenable_upnp=yes\nsecure_mode=yes\nsystem_uptime=yes\nuuid=43a58025-d9c0-4e02-9202-a3b36caf57de\nallow 1024-65535 192.168.1.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"), 0o644)
	up := s.Box.Start("miniupnpd", nil, "miniupnpd", "-d", "-f", conf, "-P", filepath.Join(l.dir, "miniupnpd.pid"))
	if err := up.WaitFor("HTTP listening", 10*time.Second); err != nil {
		t.Fatal(err, up.Output())
	}
	return l
}

// startDyndns runs cmd/dyndns in the gate with the given TSIG secret and
// address sources (YAML flow list).
func (l *lab) startDyndns(name, secret, sources string) *netlab.Proc {
	return l.startDyndnsWith(name, secret, sources, "5s", "")
}

// startDyndnsWith is startDyndns with another interval and more lines of
// the dyndns section (indented by two spaces).
func (l *lab) startDyndnsWith(name, secret, sources, interval, extra string) *netlab.Proc {
	dir := filepath.Join(l.dir, name)
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "tsig.key"), []byte(secret), 0o600)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
dyndns:
  interval: %s
  sources: %s
  provider: {type: rfc2136, server: "%s:53", zone: example.org, tsig_key: gate-key, tsig_secret: "file:tsig.key"}
  records: [{name: home.example.org, ttl: 60s}]
%s`, interval, sources, dnsAddr, extra)), 0o644)
	p := l.gate.Start("dyndns-"+name, nil, netlab.Build(l.t, "gate/cmd/dyndns"), "-config", site, "-secrets", filepath.Join(dir, "secrets"),
		"-state", filepath.Join(dir, "state"), "-metrics", "")
	if err := p.WaitFor("msg=ready", 10*time.Second); err != nil {
		l.t.Fatal(err, p.Output())
	}
	return p
}

// follow waits (a minute at most) until BIND holds want for
// home.example.org, and returns how long that took.
func (l *lab) follow(p *netlab.Proc, want string) time.Duration {
	l.t.Helper()
	start := time.Now()
	if err := netlab.Eventually(60*time.Second, 100*time.Millisecond, func() error {
		if got := l.record(); got != want {
			return fmt.Errorf("home.example.org A = %q, want %s", got, want)
		}
		return nil
	}); err != nil {
		l.t.Fatalf("%v\n%s", err, site.Tail(p.Output(), 20))
	}
	return time.Since(start)
}

// record asks BIND what home.example.org holds.
func (l *lab) record() string { return l.bind.Lookup("home.example.org") }

// echoSources starts the "what is my IP" service on the internet.
func (l *lab) echoSources() string {
	l.s.StartEcho()
	return fmt.Sprintf("[{type: http, url: %q}]", site.EchoURL)
}

func TestIntegrationDynDNS(t *testing.T) {
	netlab.Require(t, "dig")
	l := newLab(t)
	p := l.startDyndns("good", l.secret, l.echoSources())
	follow := func(want string) time.Duration { return l.follow(p, want) }
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
	bad := l.startDyndns("wrongkey", base64.StdEncoding.EncodeToString(wrong), fmt.Sprintf("[{type: http, url: %q}]", site.EchoURL))
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

// nsupdate changes the zone behind the gate's back with Debian's nsupdate,
// signed with the same key, from the DNS server's own host.
func (l *lab) nsupdate(cmds string) {
	l.t.Helper()
	f := filepath.Join(l.dir, "nsupdate.txt")
	os.WriteFile(f, []byte(fmt.Sprintf("server %s\nzone example.org\n%s\nsend\n", dnsAddr, cmds)), 0o600)
	if out, err := l.bind.Host.Output("nsupdate", "-y", "hmac-sha256:gate-key:"+l.secret, f); err != nil {
		l.t.Fatalf("nsupdate: %v\n%s", err, out)
	}
}

// gateUpdates counts the updates BIND applied for the gate (which reaches
// it from the box's WAN address) in named's log text.
func gateUpdates(log string, from netip.Addr) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "client @") && strings.Contains(line, " "+from.String()+"#") && strings.Contains(line, "adding an RR at 'home.example.org' A") {
			n++
		}
	}
	return n
}

// TestIntegrationDynDNSDrift: a record deleted or changed at BIND with
// nsupdate, behind the gate's back, is back within one verify interval,
// with one UPDATE, logged as drift; and a TSIG secret file corrected while
// the daemon runs lifts the block without a restart.
func TestIntegrationDynDNSDrift(t *testing.T) {
	netlab.Require(t, "dig", "nsupdate")
	l := newLab(t)
	const verify = 10 * time.Second
	p := l.startDyndnsWith("drift", l.secret, l.echoSources(), "5s", "  verify_interval: 10s\n")
	want := site.BoxWAN.String()
	back := func(what string, limit time.Duration) {
		t.Helper()
		before := gateUpdates(l.named.Output(), site.BoxWAN)
		start := time.Now()
		if err := netlab.Eventually(limit, 100*time.Millisecond, func() error {
			if got := l.record(); got != want {
				return fmt.Errorf("after %s, home.example.org A = %q, want %s", what, got, want)
			}
			return nil
		}); err != nil {
			t.Fatalf("%v\n%s", err, site.Tail(p.Output(), 20))
		}
		t.Logf("record back %s after %s", time.Since(start).Round(time.Millisecond), what)
		time.Sleep(time.Second) // let named log everything
		if n := gateUpdates(l.named.Output(), site.BoxWAN) - before; n != 1 {
			t.Errorf("%d UPDATEs from the gate after %s, want 1", n, what)
		}
	}
	l.follow(p, want)

	l.nsupdate("update delete home.example.org A")
	if got := l.record(); got != "" {
		t.Fatalf("nsupdate did not delete the record: %q", got)
	}
	back("a deletion", verify+2*time.Second)
	if !strings.Contains(p.Output(), "drift") || !strings.Contains(p.Output(), "holds=nothing") {
		t.Errorf("the deletion is not logged as drift:\n%s", site.Tail(p.Output(), 10))
	}
	l.nsupdate("update delete home.example.org A\nupdate add home.example.org 60 A 198.51.100.99")
	back("a change", verify+2*time.Second)
	if !strings.Contains(p.Output(), "holds=198.51.100.99") {
		t.Errorf("the change is not logged as drift:\n%s", site.Tail(p.Output(), 10))
	}
	p.Stop()

	// A wrong TSIG secret blocks the record; the corrected file lifts the
	// block while the daemon runs.
	wrong := make([]byte, 32)
	rand.Read(wrong)
	l.nsupdate("update delete home.example.org A")
	bad := l.startDyndnsWith("fixkey", base64.StdEncoding.EncodeToString(wrong), fmt.Sprintf("[{type: http, url: %q}]", site.EchoURL), "5s", "")
	if err := bad.WaitFor("record blocked until the site file changes", 30*time.Second); err != nil {
		t.Fatal(err, bad.Output())
	}
	os.WriteFile(filepath.Join(l.dir, "fixkey", "secrets", "tsig.key"), []byte(l.secret), 0o600)
	if err := bad.WaitFor("a secret changed: blocked record tried again", 15*time.Second); err != nil {
		t.Fatal(err, bad.Output())
	}
	back("the corrected secret", 10*time.Second)
}

// TestIntegrationDynDNSBoxEvent: the box announces its new WAN address by
// a UPnP event (fakeigd: miniupnpd reports no reserved address) and the
// record follows at once, although the daemon asks its sources only every
// ten minutes (the UPnP source, the site file's default).
func TestIntegrationDynDNSBoxEvent(t *testing.T) {
	netlab.Require(t, "dig")
	l := newLabBox(t, "fakeigd")
	p := l.startDyndnsWith("event", l.secret, "[{type: upnp}]", "10m", "")
	follow := func(want string) time.Duration { return l.follow(p, want) }
	follow(site.BoxWAN.String())
	if err := p.WaitFor("box WAN address", 20*time.Second); err != nil {
		t.Fatal(err, p.Output())
	}
	next := netip.MustParseAddr("203.0.113.3")
	l.s.SetBoxWAN(site.BoxWAN, next)
	d := follow(next.String())
	t.Logf("record followed the box's event in %s", d.Round(time.Millisecond))
	if !strings.Contains(p.Output(), "the box announced a WAN address change") {
		t.Errorf("no check on the event:\n%s", site.Tail(p.Output(), 10))
	}
}

// TestIntegrationDynDNSRogueIGD: a LAN host that answers SSDP as an IGD
// (fakeigd on ceph-1, reporting an address of its own) is not the box:
// what it says is never published, nor its description even read, and the
// daemon says why; once the box (the default gateway) answers too, its
// address is.
func TestIntegrationDynDNSRogueIGD(t *testing.T) {
	netlab.Require(t, "dig")
	l := newLabBox(t, "none")
	h := l.s.Servers[0].Host
	rogueWAN := "203.0.113.66"
	h.MustRun("ip", "link", "add", "rogue0", "type", "veth", "peer", "name", "rogue1")
	h.MustRun("ip", "addr", "add", rogueWAN+"/32", "dev", "rogue0")
	h.MustRun("ip", "link", "set", "rogue0", "up")
	rogue := site.StartIGD(t, h, "eth0", "rogue0")
	p := l.startDyndnsWith("rogue", l.secret, "[{type: upnp}]", "5s", "")
	ignored := "ignored the one(s) at " + l.s.Servers[0].IP.String()
	if err := p.WaitFor(ignored, 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(p.Output(), 15))
	}
	if got := l.record(); got == rogueWAN {
		t.Fatalf("the rogue IGD's address %s was published", got)
	}
	l.s.StartIGD()
	d := l.follow(p, site.BoxWAN.String())
	t.Logf("the box's address published %s after the box's IGD started", d.Round(time.Millisecond))
	if strings.Contains(p.Output(), rogueWAN) {
		t.Errorf("the rogue's address appears in the daemon's log:\n%s", site.Tail(p.Output(), 15))
	}
	if strings.Contains(rogue.Output(), "description fetched") {
		t.Errorf("the rogue's description was read:\n%s", site.Tail(rogue.Output(), 5))
	}
}
