package dyndns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"gate/integration/netlab"
	"gate/integration/site"
)

// The side-by-side runs Debian's ddclient at the interval Debian runs it
// at: its systemd unit starts `ddclient -daemon $daemon_interval` with
// daemon_interval=5m (/etc/default/ddclient); ddclient's own default,
// for a program not named *d, is to run once.
const ddclientInterval = 300 * time.Second

// benchRecord is the name both clients keep up to date.
const benchRecord = "home.example.org"

// providerPort is where the counting proxy in front of BIND listens (on
// site.DNSAddr, beside BIND's own port 53).
const providerPort = 5300

// TestSideBySideDynDNS runs address changes through Debian's ddclient
// (protocol nsupdate, use=web) and through our cmd/dyndns (an http source,
// every other setting at the site file's defaults, the box announcing its
// WAN changes by UPnP events: fakeigd, as Debian's miniupnpd reports no
// reserved address), against the same setup: two identical sites (box
// with NAT, BIND with the TSIG key, the "what is my IP" echo), one per
// client, so that both run at the same time without sharing a record.
//
// Timeline (about 8 to 11 minutes): each client publishes once, is
// stopped, and is started again at t0 on a current record (a warm start:
// its first check finds nothing to do). The steady-state window is [t0,
// t0+299s]: the requests each makes to the address source and to the DNS
// server (through a counting proxy in front of BIND) in it, extrapolated
// to one hour. ddclient's box changes address 1 s after its warm-start
// check (its worst phase; ddclient looks again only 300 s later, so its
// window is unaffected); ours sees ten changes after the window, each
// after a uniform random wait of 0 to 30 s (random phases of its
// interval), and p50 and p95 are reported. The follow time is from the
// change to the authoritative answer of BIND (asked directly, not through
// the proxy) holding the new address.
func TestSideBySideDynDNS(t *testing.T) {
	netlab.Bench(t, append([]string{"/usr/sbin/named", "ddclient", "nsupdate", "perl"}, site.Requirements...)...)
	window := ddclientInterval - time.Second
	if dl, ok := t.Deadline(); ok && time.Until(dl) < window+9*time.Minute {
		t.Fatalf("the bench needs up to %s; go test's -timeout leaves %s", window+9*time.Minute, time.Until(dl).Round(time.Second))
	}
	ours := newBenchSite(t, "ours")
	ours.s.StartIGD()
	theirs := newBenchSite(t, "ddclient")
	addr0 := site.BoxWAN.String()
	next := netip.MustParseAddr("203.0.113.3")

	// Publish once, so that t0 is a warm start on a current record.
	p := ours.startOurs(t)
	if _, err := ours.waitRecord(addr0, 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(p.Output(), 20))
	}
	p.Stop()
	if out, err := theirs.gate.Run(theirs.ddclientArgv(0)...); err != nil {
		t.Fatalf("ddclient's first run: %v", err)
	} else if _, err := theirs.waitRecord(addr0, 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cache, _ := os.ReadFile(filepath.Join(theirs.dir, "ddclient.cache"))
	t.Logf("ddclient's cache after its first run: %s", bytes.TrimSpace(cache))

	t0 := time.Now()
	op := ours.startOurs(t)
	dp := theirs.gate.Start("ddclient", nil, theirs.ddclientArgv(ddclientInterval)...)

	// ddclient: change its box's address just after its warm-start check.
	checked, err := theirs.echo.next(t0, 30*time.Second)
	if err != nil {
		t.Fatalf("ddclient: %v\n%s", err, dp.Output())
	}
	time.Sleep(time.Until(checked.Add(time.Second)))
	type result struct {
		change, seen time.Time
		err          error
	}
	theirsDone := make(chan result, 1)
	theirs.s.SetBoxWAN(site.BoxWAN, next)
	go func(change time.Time) {
		seen, err := theirs.waitRecord(next.String(), ddclientInterval+90*time.Second)
		theirsDone <- result{change, seen, err}
	}(time.Now())

	// Ours: the window is steady state; then ten changes at random phases
	// of its interval, each announced by the box's UPnP event.
	time.Sleep(time.Until(t0.Add(window)))
	var follows []float64
	var om []event
	addrs := []netip.Addr{site.BoxWAN, next}
	for i := range benchChanges {
		time.Sleep(time.Duration(rand.Int64N(int64(30 * time.Second))))
		from, to := addrs[i%2], addrs[(i+1)%2]
		change := time.Now() // the old address goes first: the change starts here
		ours.s.SetBoxWAN(from, to)
		seen, err := ours.waitRecord(to.String(), 120*time.Second)
		if err != nil {
			t.Fatalf("ours, change %d: %v\n%s", i+1, err, site.Tail(op.Output(), 20))
		}
		follows = append(follows, seen.Sub(change).Seconds())
		om = append(om, ours.dns.between(change, seen)...)
		t.Logf("ours: change %d followed in %.2f s", i+1, seen.Sub(change).Seconds())
	}
	r := <-theirsDone
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, site.Tail(dp.Output(), 30))
	}

	// The follow: ours at random phases with the site file's defaults (the
	// box's event wakes it); ddclient at its worst phase (1 s after its
	// check) as Debian runs it.
	df := r.seen.Sub(r.change)
	p50, p95 := netlab.Quantile(follows, 0.5), netlab.Quantile(follows, 0.95)
	netlab.Report(t, "dyndns follow after a WAN change p50, ours (defaults, UPnP event)", p50, "s")
	netlab.Report(t, "dyndns follow after a WAN change p95, ours (defaults, UPnP event)", p95, "s")
	netlab.Report(t, fmt.Sprintf("dyndns follow after a WAN change, ddclient (-daemon %s, worst phase)", ddclientInterval), df.Seconds(), "s")
	netlab.Report(t, "dyndns follow ratio (ours p95/ddclient)", p95/df.Seconds(), "x")
	dm := theirs.dns.between(r.change, r.seen)
	t.Logf("provider messages for %d address changes: ours %s; for one: ddclient %s", benchChanges, summary(om), summary(dm))
	netlab.Report(t, "dyndns provider messages per address change, ours", float64(len(om))/benchChanges, "messages")
	netlab.Report(t, "dyndns provider messages per address change, ddclient", float64(len(dm)), "messages")

	// Steady state.
	end := t0.Add(window)
	perHour := func(n int) float64 { return float64(n) * float64(time.Hour) / float64(window) }
	oa, da := ours.echo.between(t0, end), theirs.echo.between(t0, end)
	od, dd := ours.dns.between(t0, end), theirs.dns.between(t0, end)
	t.Logf("steady window %s: ours %d address requests, %d DNS messages (%s); ddclient %d address requests, %d DNS messages (%s)",
		window, len(oa), len(od), summary(od), len(da), len(dd), summary(dd))
	// Counted over the window after a warm start, extrapolated to 1h.
	netlab.Report(t, "dyndns steady requests to the DNS provider, ours", perHour(len(od)), "/h")
	netlab.Report(t, "dyndns steady requests to the DNS provider, ddclient", perHour(len(dd)), "/h")
	netlab.Report(t, "dyndns steady requests to the address source, ours", perHour(len(oa)), "/h")
	netlab.Report(t, "dyndns steady requests to the address source, ddclient", perHour(len(da)), "/h")
	// Ours reads the record back at start and every verify_interval
	// (QUERY); nothing changed, so neither sends an UPDATE.
	if updates(od) != 0 || updates(dd) != 0 {
		t.Errorf("DNS UPDATEs at steady state (nothing changed): ours %s, ddclient %s", summary(od), summary(dd))
	}
}

// benchChanges is how many address changes ours follows in the bench.
const benchChanges = 10

// updates counts the DNS UPDATE messages among ev.
func updates(ev []event) int {
	n := 0
	for _, e := range ev {
		if strings.Contains(e.what, "UPDATE") {
			n++
		}
	}
	return n
}

// benchSite is one site of the side by side: the box, BIND with the TSIG
// key behind a counting proxy, the counting echo service and the gate.
type benchSite struct {
	name string
	s    *site.Site
	dir  string
	gate *netlab.Host
	bind *site.BIND
	dnsT *nsThread // on the DNS server's namespace
	dns  *eventLog // messages the proxy passed to BIND
	echo *eventLog // requests to the echo service
}

func newBenchSite(t *testing.T, name string) *benchSite {
	t.Helper()
	s := site.New(t, site.Options{})
	b := &benchSite{name: name, s: s, dir: filepath.Join(s.Dir, name), gate: s.Lab.Host("gate"), dns: &eventLog{}, echo: &eventLog{}}
	if err := os.MkdirAll(filepath.Join(b.dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.Lab.Attach(s.Switch, "br0", b.gate, "eth0", site.GateLAN.String()+"/24")
	b.gate.MustRun("ip", "route", "add", "default", "via", site.BoxLAN.String())
	b.bind = s.StartBIND("example.org", benchRecord, "gate-key", site.NewTSIGSecret())
	b.dnsT = enterNS(t, b.bind.Host)
	b.startProxy(t)
	b.startEcho(t)

	// The TSIG key for both clients: ours reads the secret, nsupdate a
	// named.conf key statement (what tsig-keygen writes).
	key := fmt.Sprintf("key \"gate-key.\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", b.bind.Secret)
	for file, content := range map[string]string{"secrets/tsig.key": b.bind.Secret, "nsupdate.key": key} {
		if err := os.WriteFile(filepath.Join(b.dir, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// startOurs runs cmd/dyndns in the gate with the defaults of the site
// file (no interval given) and the echo as its address source.
func (b *benchSite) startOurs(t *testing.T) *netlab.Proc {
	t.Helper()
	conf := filepath.Join(b.dir, "site.yaml")
	yaml := fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
dyndns:
  sources: [{type: http, url: %q}]
  provider: {type: rfc2136, server: "%s", zone: example.org, tsig_key: gate-key, tsig_secret: "file:tsig.key"}
  records: [{name: %s, ttl: 60s}]
`, site.EchoURL, netip.AddrPortFrom(site.DNSAddr, providerPort), benchRecord)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := b.gate.Start("dyndns", nil, netlab.Build(t, "gate/cmd/dyndns"), "-config", conf, "-secrets", filepath.Join(b.dir, "secrets"),
		"-state", filepath.Join(b.dir, "state"), "-metrics", "")
	if err := p.WaitFor("msg=ready", 20*time.Second); err != nil {
		t.Fatal(err, p.Output())
	}
	if !strings.Contains(p.Output(), "interval=30s") {
		t.Logf("ours: the default interval is no longer 30s:\n%s", p.Output())
	}
	return p
}

// ddclientArgv is Debian's ddclient in the foreground with its own config
// and cache files: protocol nsupdate through the proxy, the address from
// the echo (use=web). daemon 0 runs it once.
func (b *benchSite) ddclientArgv(daemon time.Duration) []string {
	conf := filepath.Join(b.dir, "ddclient.conf")
	content := fmt.Sprintf(`# TestSideBySideDynDNS
use=web
web=%s
protocol=nsupdate
server=%s
password=%s
zone=example.org
ttl=60
%s
`, site.EchoURL, netip.AddrPortFrom(site.DNSAddr, providerPort), filepath.Join(b.dir, "nsupdate.key"), benchRecord)
	os.WriteFile(conf, []byte(content), 0o600) // a failure shows as ddclient's own error
	return []string{"ddclient", "-foreground", "-verbose", "-file", conf, "-cache", filepath.Join(b.dir, "ddclient.cache"),
		"-daemon", fmt.Sprint(int(daemon.Seconds()))}
}

// authoritative asks BIND itself (not through the proxy, not a cache)
// for the record's A addresses; "" for none.
func (b *benchSite) authoritative() (string, error) {
	c, err := b.dnsT.dial("udp", netip.AddrPortFrom(site.DNSAddr, 53).String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	co := &dns.Conn{Conn: c}
	co.SetDeadline(time.Now().Add(2 * time.Second))
	q := new(dns.Msg).SetQuestion(dns.Fqdn(benchRecord), dns.TypeA)
	q.RecursionDesired = false
	if err := co.WriteMsg(q); err != nil {
		return "", err
	}
	r, err := co.ReadMsg()
	if err != nil {
		return "", err
	}
	if !r.Authoritative || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError) {
		return "", fmt.Errorf("BIND answered %s (authoritative %v) for %s A", dns.RcodeToString[r.Rcode], r.Authoritative, benchRecord)
	}
	var addrs []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	return strings.Join(addrs, ","), nil
}

// waitRecord polls BIND until the record holds want, and returns when it
// saw it.
func (b *benchSite) waitRecord(want string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := b.authoritative()
		if err == nil && got == want {
			return time.Now(), nil
		}
		if errors.Is(err, errNSClosed) || time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %s A on the authoritative server is %q (%v), still not %s after %s", b.name, benchRecord, got, err, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startProxy relays DNS over UDP and TCP from site.DNSAddr:providerPort
// to BIND on port 53, logging each message a client sends.
func (b *benchSite) startProxy(t *testing.T) {
	t.Helper()
	listen := netip.AddrPortFrom(site.DNSAddr, providerPort).String()
	upstream := netip.AddrPortFrom(site.DNSAddr, 53).String()
	var pc net.PacketConn
	var ln net.Listener
	var err error
	b.dnsT.do(func() {
		if pc, err = net.ListenPacket("udp", listen); err == nil {
			ln, err = net.Listen("tcp", listen)
		}
	})
	if err != nil {
		t.Fatalf("%s: the DNS proxy on %s: %v", b.name, listen, err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := bytes.Clone(buf[:n])
			b.dns.add("udp " + describeDNS(q))
			go func() {
				up, err := b.dnsT.dial("udp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				up.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := up.Write(q); err != nil {
					return
				}
				r := make([]byte, 65535)
				if n, err := up.Read(r); err == nil {
					pc.WriteTo(r[:n], from)
				}
			}()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.relayTCP(c, upstream)
		}
	}()
}

// relayTCP passes one client's DNS-over-TCP connection to upstream,
// logging each message (2-byte length, then the message) it sends.
func (b *benchSite) relayTCP(c net.Conn, upstream string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	up, err := b.dnsT.dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { io.Copy(c, up); c.Close() }()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, 2+int(binary.BigEndian.Uint16(l[:])))
		copy(msg, l[:])
		if _, err := io.ReadFull(c, msg[2:]); err != nil {
			return
		}
		b.dns.add("tcp " + describeDNS(msg[2:]))
		if _, err := up.Write(msg); err != nil {
			return
		}
	}
}

// describeDNS names a message by opcode and first question, e.g.
// "UPDATE SOA example.org." (an update's zone section).
func describeDNS(b []byte) string {
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		return "unparsable"
	}
	s := dns.OpcodeToString[m.Opcode]
	if len(m.Question) > 0 {
		s += " " + dns.TypeToString[m.Question[0].Qtype] + " " + m.Question[0].Name
	}
	return s
}

// startEcho runs the "what is my IP" service at site.EchoAddr (the same
// answer as integration/site/echoip: the caller's address, which is the
// box's WAN address through its NAT), logging each request.
func (b *benchSite) startEcho(t *testing.T) {
	t.Helper()
	h := b.s.Hub("echo", site.EchoAddr)
	th := enterNS(t, h)
	var ln net.Listener
	var err error
	th.do(func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(site.EchoAddr, 8053).String()) })
	if err != nil {
		t.Fatalf("%s: the echo service: %v", b.name, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ip", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		b.echo.add(r.Method + " " + r.URL.Path + " from " + host)
		w.Write([]byte(host + "\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// eventLog is a timestamped list of the requests a peer saw.
type eventLog struct {
	mu sync.Mutex
	ev []event
}

type event struct {
	at   time.Time
	what string
}

func (l *eventLog) add(what string) {
	l.mu.Lock()
	l.ev = append(l.ev, event{time.Now(), what})
	l.mu.Unlock()
}

// between returns the events in [from, to].
func (l *eventLog) between(from, to time.Time) []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []event
	for _, e := range l.ev {
		if !e.at.Before(from) && !e.at.After(to) {
			out = append(out, e)
		}
	}
	return out
}

// next waits up to timeout for the first event at or after from and
// returns its time.
func (l *eventLog) next(from time.Time, timeout time.Duration) (time.Time, error) {
	var at time.Time
	err := netlab.Eventually(timeout, 50*time.Millisecond, func() error {
		ev := l.between(from, time.Now())
		if len(ev) == 0 {
			return fmt.Errorf("no request to the address source within %s of %s", timeout, from.Format(time.TimeOnly))
		}
		at = ev[0].at
		return nil
	})
	return at, err
}

// summary counts events by kind: "2× udp QUERY SOA example.org., 1× …".
func summary(ev []event) string {
	n := map[string]int{}
	var kinds []string
	for _, e := range ev {
		if n[e.what] == 0 {
			kinds = append(kinds, e.what)
		}
		n[e.what]++
	}
	slices.Sort(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d× %s", n[k], k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// nsThread runs functions on an OS thread inside a host's network
// namespace, so that the sockets they open live there (a socket stays in
// its namespace; any goroutine may then use it). The thread is never
// returned to the Go scheduler: it ends with the test.
type nsThread struct {
	fns  chan func()
	quit chan struct{}
}

var errNSClosed = errors.New("the namespace's thread has ended")

func enterNS(t *testing.T, h *netlab.Host) *nsThread {
	t.Helper()
	n := &nsThread{fns: make(chan func()), quit: make(chan struct{})}
	ready := make(chan error)
	go func() {
		// Locked until the thread is back in its own namespace (when Go
		// ran this goroutine on the main thread, the whole process is in
		// the lab's namespace meanwhile, see netlab's teardown).
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ready <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(h.NS)
		if err == nil {
			err = netns.Set(ns)
			ns.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for {
			select {
			case fn := <-n.fns:
				fn()
			case <-n.quit:
				if netns.Set(orig) == nil {
					runtime.UnlockOSThread()
				} // else the thread ends with the goroutine
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("entering namespace %s: %v", h.NS, err)
	}
	t.Cleanup(func() { close(n.quit) })
	return n
}

// do runs fn in the namespace; false if the thread has ended.
func (n *nsThread) do(fn func()) bool {
	done := make(chan struct{})
	select {
	case n.fns <- func() { defer close(done); fn() }:
		<-done
		return true
	case <-n.quit:
		return false
	}
}

// dial opens a connection from inside the namespace.
func (n *nsThread) dial(network, addr string) (net.Conn, error) {
	var c net.Conn
	err := errNSClosed
	n.do(func() { c, err = net.DialTimeout(network, addr, 5*time.Second) })
	return c, err
}
