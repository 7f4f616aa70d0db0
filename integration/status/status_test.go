// Package status tests statusd in the integration lab: its page rendered
// by Debian's headless Chromium against real daemons (our upsd over
// Debian's dummy-ups + upsd, with Debian's upsmon as the hosts' secondaries,
// and our bastion), and its alerts received by Debian's python3-aiosmtpd
// (STARTTLS + AUTH) and by a webhook receiver, with the receiver down
// during the outage and a flapping UPS.
package status

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"gate/integration/netlab"
	"gate/integration/site"
	"gate/internal/alert"
)

type lab struct {
	t        *testing.T
	s        *site.Site
	src      *site.NUTSource
	gate     *netlab.Host
	dir      string
	siteFile string
	secrets  string
	marker   string
	adminKey string // the bastion admin's private key file
	statusd  *netlab.Proc
	upsd     *netlab.Proc
	full     bool // with the tunnel (a hub) and dyndns (BIND, an echo service)
}

const gateIP = "192.168.1.2"

func newLab(t *testing.T, statusYAML string, secrets map[string]string, full bool) *lab {
	netlab.Require(t, "upsc", "/lib/nut/upsmon", "/lib/nut/upsd", "/lib/nut/dummy-ups")
	s := site.New(t, site.Options{})
	l := &lab{t: t, s: s, dir: s.Dir, full: full}
	l.src = s.StartNUTSource("mon", "sourcepw")
	l.gate = s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", l.gate, "eth0", gateIP+"/24")
	l.secrets = filepath.Join(l.dir, "secrets")
	os.MkdirAll(l.secrets, 0o700)
	secrets["nut-source"] = "sourcepw"
	for k, v := range secrets {
		os.WriteFile(filepath.Join(l.secrets, k), []byte(v), 0o600)
	}
	// The bastion admin's key.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sp, _ := ssh.NewPublicKey(pub)
	pemKey, _ := ssh.MarshalPrivateKey(priv, "")
	l.adminKey = filepath.Join(l.dir, "admin_key")
	os.WriteFile(l.adminKey, pem.EncodeToMemory(pemKey), 0o600)

	var users, hosts strings.Builder
	for _, sv := range s.Servers {
		fmt.Fprintf(&users, "    - {name: %s, password: file:nut-%s}\n", sv.Name, sv.Name)
		fmt.Fprintf(&hosts, "  - {name: %s, macs: [%q], ip: %s, role: %s}\n", sv.Name, sv.MAC, sv.IP, sv.Role)
	}
	var hubKey wgtypes.Key
	hubIface := s.Lab.Name("wh")
	if full {
		netlab.Require(t, "wireguard-go", "wg", "wg-quick", "/usr/sbin/named")
		hubKey, _ = wgtypes.GeneratePrivateKey()
		secrets["tsig"] = site.NewTSIGSecret()
		statusYAML = fmt.Sprintf(`vpn:
  interface: %s
  keepalive: 2s
  hubs:
    - {name: vps1, endpoint: "%s:51820", public_key: %s, gate_address: 10.99.0.2/24, hub_address: 10.99.0.1}
dyndns:
  interval: 5s
  sources: [{type: http, url: %q}]
  provider: {type: rfc2136, server: "%s:53", zone: example.net, tsig_key: gate-key, tsig_secret: "file:tsig"}
  records: [{name: home.example.net}]
`, s.Lab.Name("wg"), site.Hub1WAN, hubKey.PublicKey(), site.EchoURL, site.DNSAddr) + statusYAML
		for k, v := range map[string]string{"tsig": secrets["tsig"]} {
			os.WriteFile(filepath.Join(l.secrets, k), []byte(v), 0o600)
		}
	}
	l.siteFile = filepath.Join(l.dir, "site.yaml")
	os.WriteFile(l.siteFile, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-1, address: %s/24}
ups:
  source: nut://%s/ups
  source_user: mon
  source_password: file:nut-source
  listen: ["%s:3493"]
  poll_interval: 1s
  users:
%s  shutdown_groups:
    - {name: compute, timeout: 20s}
    - {name: ceph, timeout: 15s}
roles: {ceph: {installer: {kernel: "http://192.168.1.2/k"}}, compute: {installer: {kernel: "http://192.168.1.2/k"}}}
hosts:
%sbastion:
  port: 2222
  listen_lan: true
  users: [{name: admin, keys: [%q], allow: ["*:22"]}]
%s`, gateIP, site.UPSSourceLAN, gateIP, users.String(), hosts.String(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), statusYAML)), 0o644)
	if out, err := l.gate.Run(netlab.Build(t, "gate/gate"), "secrets", "init", "-c", l.siteFile); err != nil {
		t.Fatal(out, err)
	}
	l.marker = filepath.Join(l.dir, "gate.poweroff")
	if full {
		l.gate.MustRun("ip", "route", "add", "default", "via", site.BoxLAN.String())
		hub := s.Hub("vps1", site.Hub1WAN)
		dir := filepath.Join(l.dir, "vps1")
		if out, err := l.gate.Output(netlab.Build(t, "gate/gate"), "vps-config", "-c", l.siteFile, "-i", hubIface, "-o", dir, "vps1"); err != nil {
			t.Fatalf("gate vps-config: %v\n%s", err, out)
		}
		keyFile := filepath.Join(dir, hubIface+".key")
		os.WriteFile(keyFile, []byte(hubKey.String()+"\n"), 0o600)
		s.StartHub(hub, hubIface, dir, keyFile)
		s.StartBIND("example.net", "home.example.net", "gate-key", secrets["tsig"])
		s.StartEcho()
	}
	return l
}

func (l *lab) state(d string) string { return filepath.Join(l.dir, "state", d) }

func (l *lab) secret(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.secrets, name))
	return strings.TrimSpace(string(b))
}

// start runs upsd, the hosts' upsmon secondaries, the bastion and statusd
// in the gate's namespace, each daemon's /metrics on its loopback port.
func (l *lab) start(statusEnv []string) {
	t := l.t
	l.startUpsd()
	for _, sv := range l.s.Servers {
		// SHUTDOWNCMD plays the power-off: the server leaves the LAN.
		l.s.StartUpsmon(sv, gateIP, "ups", sv.Name, l.secret("nut-"+sv.Name), site.PowerOffCmd(filepath.Join(l.dir, sv.Name+".down"), time.Second))
	}
	b := l.gate.Start("bastion", nil, netlab.Build(t, "gate/cmd/bastion"), "-config", l.siteFile, "-secrets", l.secrets,
		"-state", l.state("bastion"), "-metrics", "127.0.0.1:9105")
	if err := b.WaitFor("msg=ready", 15*time.Second); err != nil {
		t.Fatal(err, b.Output())
	}
	if l.full {
		for _, d := range []struct{ name, port string }{{"vpn", "9101"}, {"dyndns", "9102"}} {
			p := l.gate.Start(d.name, nil, netlab.Build(t, "gate/cmd/"+d.name), "-config", l.siteFile, "-secrets", l.secrets,
				"-state", l.state(d.name), "-metrics", "127.0.0.1:"+d.port)
			if err := p.WaitFor("msg=ready", 20*time.Second); err != nil {
				t.Fatal(err, p.Output())
			}
		}
	}
	l.startStatusd(statusEnv)
	// Every secondary connected, as statusd sees it.
	if err := netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		out, err := l.gate.Output("upsc", "-c", "ups@"+gateIP)
		if n := len(strings.Fields(out)); err != nil || n < len(l.s.Servers) {
			return fmt.Errorf("%d secondaries connected: %v %s", n, err, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) startUpsd() {
	l.upsd = l.gate.Start("upsd", nil, netlab.Build(l.t, "gate/cmd/upsd"), "-config", l.siteFile, "-secrets", l.secrets,
		"-state", l.state("upsd"), "-metrics", "127.0.0.1:9103", "-poweroff-marker", l.marker)
	if err := l.upsd.WaitFor("msg=ready", 15*time.Second); err != nil {
		l.t.Fatal(err, l.upsd.Output())
	}
}

func (l *lab) startStatusd(env []string) {
	l.statusd = l.gate.Start("statusd", env, netlab.Build(l.t, "gate/cmd/statusd"), "-config", l.siteFile, "-secrets", l.secrets,
		"-state", l.state("statusd"), "-metrics", "127.0.0.1:9107", "-perm", l.dir)
	if err := l.statusd.WaitFor("msg=ready", 15*time.Second); err != nil {
		l.t.Fatal(err, l.statusd.Output())
	}
}

// outDir is where the screenshot goes: next to the test output
// (GATE_TEST_OUT, else build/test-output/status in the repository).
func outDir(t *testing.T) string {
	d := os.Getenv("GATE_TEST_OUT")
	if d == "" {
		d = filepath.Join(site.RepoRoot(), "build", "test-output", "status")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// chromium runs Debian's headless Chromium in h with a fresh profile.
func chromium(t *testing.T, h *netlab.Host, args ...string) (string, error) {
	prof := t.TempDir()
	argv := append([]string{"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + prof, "--window-size=1280,2600"}, args...)
	return h.Output(argv...)
}

// section returns the HTML of <section id="id">.
func section(dom, id string) string {
	m := regexp.MustCompile(`(?s)<section id="` + id + `"[^>]*>(.*?)</section>`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return m[1]
}

var tags = regexp.MustCompile(`<[^>]*>`)

func text(html string) string {
	return strings.Join(strings.Fields(tags.ReplaceAllString(html, " ")), " ")
}

func TestIntegrationStatusPage(t *testing.T) {
	netlab.Require(t, "chromium", "ssh", "curl")
	l := newLab(t, "status: {interval: 1s}\n", map[string]string{}, true)
	l.start(nil)
	pw := l.secret("gokrazy-password")
	laptop := l.s.Lab.Host("laptop")
	l.s.Lab.Attach(l.s.Switch, "br0", laptop, "eth0", "192.168.1.50/24")

	// An admin through the bastion (ceph-1 runs no sshd: the channel is
	// opened, the connection refused, and the audit log says so).
	laptop.Run("ssh", "-i", l.adminKey, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=5", "-p", "2222", "-W", "ceph-1:22", "admin@"+gateIP)
	// The tunnel up and the record published, as statusd sees them.
	if err := netlab.Eventually(60*time.Second, time.Second, func() error {
		js, err := laptop.Output("curl", "-sf", "-u", "gokrazy:"+pw, "http://"+gateIP+":8081/status.json")
		if err != nil || !strings.Contains(js, `"handshake_age_seconds"`) || !strings.Contains(js, `"value": "203.0.113.2"`) {
			return fmt.Errorf("not yet: %v %s", err, js)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The UPS on battery for a while, so the page has something to show.
	l.src.Set("OB DISCHRG", 91, 1400)
	time.Sleep(5 * time.Second)

	url := fmt.Sprintf("http://gokrazy:%s@%s:8081/", pw, gateIP)
	shot := filepath.Join(outDir(t), "status-page.png")
	if out, err := chromium(t, laptop, "--screenshot="+shot, url); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
	dom, err := chromium(t, laptop, "--dump-dom", url)
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, dom)
	}
	os.WriteFile(filepath.Join(outDir(t), "status-page.html"), []byte(dom), 0o644)
	for id, wants := range map[string][]string{
		"power":   {"UPS status OB DISCHRG (on battery)", "Battery charge 91 %", "Runtime 1400 s", "Shutdown plan idle", "No shutdown plan has run"},
		"tunnel":  {"Active hub: vps1", "vps1 (active) up", "203.0.113.10:51820"},
		"dns":     {"Public address: 203.0.113.2 (ipv4)", "home.example.net A 203.0.113.2"},
		"hosts":   {"ceph-1 192.168.1.11 52:54:00:00:01:01 ceph up connected", "compute-1 192.168.1.21 52:54:00:00:02:01 compute up connected"},
		"bastion": {"Open channels: 0", "connections 1", "admin", "ceph-1:22"},
		"gate":    {"Host name gate-1", "Uptime", "/perm", "used of"},
		"history": {"Battery charge, last 6 hours", "UPS load, last 7 days", "Tunnel handshake age, last 6 hours"},
	} {
		got := text(section(dom, id))
		if got == "" {
			t.Errorf("no section %q in the page", id)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("section %s lacks %q:\n%s", id, w, got)
			}
		}
	}
	// The tunnel's byte counters (gate_vpn_*_bytes_total) reach the page.
	if tn := text(section(dom, "tunnel")); strings.Contains(tn, " 0 B") {
		t.Errorf("the tunnel's bytes are zero: %s", tn)
	}
	// The charge graph has points (the loaded one has none: dummy-ups
	// reports no ups.load).
	pts := regexp.MustCompile(`aria-label="Battery charge, last 6 hours".*?<polyline[^>]* points="([^"]+)"`).FindStringSubmatch(dom)
	if pts == nil || len(strings.Fields(pts[1])) == 0 {
		t.Errorf("the charge graph has no points")
	} else {
		t.Logf("charge graph points: %s", pts[1])
	}

	// A wrong password is refused: the browser shows none of the page
	// (headless Chromium leaves the 401 at an empty document), curl gets
	// 401.
	bad, _ := chromium(t, laptop, "--dump-dom", fmt.Sprintf("http://gokrazy:wrong@%s:8081/", gateIP))
	if strings.Contains(bad, `<section`) || strings.Contains(bad, "OB DISCHRG") {
		t.Errorf("wrong password not refused:\n%s", bad)
	}
	code, _ := laptop.Output("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "gokrazy:wrong", "http://"+gateIP+":8081/status.json")
	if code != "401" {
		t.Errorf("curl with a wrong password: HTTP %s", code)
	}
	js, err := laptop.Output("curl", "-sf", "-u", "gokrazy:"+pw, "http://"+gateIP+":8081/status.json")
	if err != nil || !strings.Contains(js, `"status": "OB DISCHRG"`) {
		t.Errorf("JSON: %v\n%s", err, js)
	}
	// gate status from the laptop.
	out, err := laptop.Output(netlab.Build(t, "gate/gate"), "status", "-c", l.siteFile)
	if err != nil || !strings.Contains(out, "OB DISCHRG") || !strings.Contains(out, "ceph-1") {
		t.Errorf("gate status: %v\n%s", err, out)
	}
}

// hookReceiver collects webhook bodies in the test process, its socket
// in a LAN namespace; it can be taken down and brought back.
type hookReceiver struct {
	t    *testing.T
	h    *netlab.Host
	addr string
	mu   sync.Mutex
	got  []alert.WebhookBody
	srv  *http.Server
}

func (r *hookReceiver) up() {
	ln, err := site.ListenIn(r.h, r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var b alert.WebhookBody
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, b)
		r.mu.Unlock()
	})}
	go r.srv.Serve(ln)
}

func (r *hookReceiver) down() { r.srv.Close() }

func (r *hookReceiver) bodies() []alert.WebhookBody {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alert.WebhookBody(nil), r.got...)
}

// tlsFiles writes a CA and a server certificate for ip, returning the
// CA's, the certificate's and the key's paths.
func tlsFiles(t *testing.T, dir, ip string) (ca, cert, key string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP(ip)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "smtp.pem"), filepath.Join(dir, "smtp.key")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return ca, cert, key
}

// mails reads the received messages, in order.
func mails(t *testing.T, dir string) []*mail.Message {
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	sort.Strings(files)
	var out []*mail.Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, m)
	}
	return out
}

func kindsOf(bs []alert.WebhookBody) []string {
	var k []string
	for _, b := range bs {
		k = append(k, b.Kind)
	}
	return k
}

func TestIntegrationStatusAlerts(t *testing.T) {
	netlab.Require(t, "/usr/bin/python3")
	if _, err := os.Stat("/usr/lib/python3/dist-packages/aiosmtpd"); err != nil {
		netlab.Require(t, "aiosmtpd (python3-aiosmtpd)")
	}
	const (
		mailIP = "192.168.1.40"
		hookIP = "192.168.1.60"
		limit  = 3
		window = time.Minute
	)
	l := newLab(t, fmt.Sprintf(`status: {interval: 1s}
alerts:
  webhook: {url: "http://%s:8000/hook"}
  email: {server: "%s:2525", from: gate@lab.example, to: [admin@lab.example], user: gate, password: file:smtp-password}
  limit: %d
  window: %s
  retry_max: 2s
`, hookIP, mailIP, limit, window), map[string]string{"smtp-password": "mailpw"}, false)

	// The SMTP server: aiosmtpd with STARTTLS required and AUTH.
	mailHost := l.s.Lab.Host("mail")
	l.s.Lab.Attach(l.s.Switch, "br0", mailHost, "eth0", mailIP+"/24")
	maildir := filepath.Join(l.dir, "mail")
	os.MkdirAll(maildir, 0o755)
	ca, cert, key := tlsFiles(t, l.dir, mailIP)
	wd, _ := os.Getwd()
	smtpd := mailHost.Start("aiosmtpd", nil, "/usr/bin/python3", filepath.Join(wd, "smtpd.py"), mailIP, "2525", maildir, cert, key, "gate", "mailpw")
	if err := smtpd.WaitFor("listening", 20*time.Second); err != nil {
		t.Fatal(err, smtpd.Output())
	}
	// The webhook receiver.
	hook := &hookReceiver{t: t, h: l.s.Lab.Host("hook"), addr: hookIP + ":8000"}
	l.s.Lab.Attach(l.s.Switch, "br0", hook.h, "eth0", hookIP+"/24")
	hook.up()

	// statusd trusts the lab's CA for the SMTP server's STARTTLS.
	l.start([]string{"SSL_CERT_FILE=" + ca})

	// 1. A flapping UPS: 16 changes within a minute yield at most
	// limit+1 messages (the limit, then a digest at the window's end).
	flapStart := len(hook.bodies())
	const flaps = 16
	for i := 0; i < flaps; i++ {
		if i%2 == 0 {
			l.src.Set("OB DISCHRG", 95, 1500)
		} else {
			l.src.Set("OL CHRG", 95, 1500)
		}
		time.Sleep(3 * time.Second)
	}
	if err := netlab.Eventually(window+20*time.Second, time.Second, func() error {
		for _, b := range hook.bodies()[flapStart:] {
			if b.Kind == "digest" {
				return nil
			}
		}
		return fmt.Errorf("no digest yet")
	}); err != nil {
		t.Fatalf("%v: %v", err, kindsOf(hook.bodies()))
	}
	flapMsgs := hook.bodies()[flapStart:]
	sent, held := 0, 0
	for _, b := range flapMsgs {
		if b.Kind == "digest" {
			fmt.Sscanf(b.Title[strings.Index(b.Title, ": ")+2:], "%d", &held)
		} else {
			sent++
		}
	}
	t.Logf("flapping: %d changes → %d messages %v (%d held in the digest)", flaps, len(flapMsgs), kindsOf(flapMsgs), held)
	if len(flapMsgs) > limit+1 || sent != limit {
		t.Errorf("flapping UPS: %d messages %v, want %d then one digest", len(flapMsgs), kindsOf(flapMsgs), limit)
	}
	if sent+held < flaps*3/4 {
		t.Errorf("only %d of %d changes were seen (sent %d, held %d)", sent+held, flaps, sent, held)
	}

	// 2. The outage, with the webhook receiver down: mains lost, low
	// battery, the plan to its end; the gate "powers off" (statusd and
	// upsd stop at once, whatever statusd had seen by then); mains comes
	// back and the gate boots: upsd archives the finished journal, a new
	// statusd reads it and its queue; then the receiver is back.
	hook.down()
	outageStart := len(hook.bodies())
	mailStart := len(mails(t, maildir))
	lost := strings.Count(l.statusd.Output(), "kind=mains-lost source=ups")
	l.src.Set("OB DISCHRG", 80, 1200)
	if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		if strings.Count(l.statusd.Output(), "kind=mains-lost source=ups") == lost {
			return fmt.Errorf("statusd has not seen mains lost")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l.src.Set("OB LB", 10, 60)
	if err := netlab.Eventually(90*time.Second, 200*time.Millisecond, func() error {
		_, err := os.Stat(l.marker)
		return err
	}); err != nil {
		t.Fatalf("the plan did not finish: %v\n%s", err, site.Tail(l.upsd.Output(), 20))
	}
	l.statusd.Stop()
	l.upsd.Stop()
	if !strings.Contains(l.statusd.Output(), "alert delivery failed; retrying\" daemon=statusd channel=webhook") {
		t.Errorf("no failed delivery while the receiver was down")
	}
	seen := l.statusd.Output()
	t.Logf("statusd had seen by the power-off: %q", regexp.MustCompile(`msg=alert daemon=statusd kind=[a-z-]+`).FindAllString(seen[strings.LastIndex(seen, "kind=mains-lost source=ups"):], -1))
	l.src.Set("OL CHRG", 12, 300)
	if err := netlab.Eventually(20*time.Second, 300*time.Millisecond, func() error {
		if st, _ := l.src.Status(); st != "OL CHRG" {
			return fmt.Errorf("source still %q", st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	os.Remove(l.marker)
	l.startUpsd()
	l.startStatusd([]string{"SSL_CERT_FILE=" + ca})
	if err := l.statusd.WaitFor("kind=mains-back", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(l.statusd.Output(), 20))
	}
	hook.up()
	want := []string{"mains-lost", "low-battery", "plan-started", "plan-group", "plan-group", "plan-ups-off", "plan-finished", "mains-back"}
	if err := netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		if got := kindsOf(hook.bodies()[outageStart:]); len(got) < len(want) {
			return fmt.Errorf("webhook got %v", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(l.statusd.Output(), 30))
	}
	time.Sleep(3 * time.Second) // nothing more (no step twice)
	got := hook.bodies()[outageStart:]
	t.Logf("after the receiver came back: %v", kindsOf(got))
	// In order: what happened, as it happened (low battery and the plan's
	// start may come in either order: upsd can start the plan before
	// statusd reads the LB flag).
	kinds := kindsOf(got)
	if len(kinds) >= len(want) && kinds[1] == "plan-started" && kinds[2] == "low-battery" {
		kinds[1], kinds[2] = kinds[2], kinds[1]
	}
	// upsd's return plan starts at the boot after a finished shutdown
	// (then waits for the battery): its steps may follow.
	for len(kinds) > len(want) && strings.HasPrefix(kinds[len(kinds)-1], "return-") {
		kinds = kinds[:len(kinds)-1]
	}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Errorf("after the receiver came back: %v, want %v in order, once each", kindsOf(got), want)
	} else if got[3].Title != "[lab] Shutdown plan: group compute is down" || got[4].Title != "[lab] Shutdown plan: group ceph is down" {
		t.Errorf("groups out of order: %q, %q", got[3].Title, got[4].Title)
	}

	// 3. The mail: "mains lost" and "shutdown finished" over STARTTLS with AUTH.
	var subjects []string
	if err := netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		subjects = nil
		for _, m := range mails(t, maildir)[mailStart:] {
			subjects = append(subjects, m.Header.Get("Subject"))
		}
		if len(subjects) < len(want) {
			return fmt.Errorf("%d mails", len(subjects))
		}
		return nil
	}); err != nil {
		t.Fatalf("%v: %q\n%s", err, subjects, smtpd.Output())
	}
	t.Logf("mail subjects: %q", subjects)
	if subjects[0] != "[lab] Mains lost: the UPS is on battery" || subjects[6] != "[lab] Shutdown finished: the gate powers itself off" || subjects[7] != "[lab] Mains back: the UPS is on line power" {
		t.Errorf("mail subjects %q", subjects)
	}
	if !strings.Contains(smtpd.Output(), "auth PLAIN ok") || !strings.Contains(smtpd.Output(), "tls True") {
		t.Errorf("mail not sent over STARTTLS with AUTH:\n%s", smtpd.Output())
	}

	// 4. The way back: the battery charges, the servers come back on the
	// LAN (their "power-on"), upsd's return plan finishes: told once each.
	l.src.Set("OL CHRG", 80, 1800)
	for _, sv := range l.s.Servers {
		l.s.PowerOn(sv)
		l.s.StartUpsmon(sv, gateIP, "ups", sv.Name, l.secret("nut-"+sv.Name), site.MarkCmd(filepath.Join(l.dir, sv.Name+".down2")))
	}
	if err := netlab.Eventually(90*time.Second, 500*time.Millisecond, func() error {
		for _, b := range hook.bodies()[outageStart:] {
			if b.Kind == "return-done" {
				return nil
			}
		}
		return fmt.Errorf("no return-done yet: %v", kindsOf(hook.bodies()[outageStart:]))
	}); err != nil {
		t.Fatalf("%v\n%s", err, site.Tail(l.upsd.Output(), 30))
	}
	time.Sleep(3 * time.Second)
	var back []string
	count := map[string]int{}
	for _, b := range hook.bodies()[outageStart:] {
		if strings.HasPrefix(b.Kind, "return-") || b.Kind == "host-back" || b.Kind == "host-not-back" {
			back = append(back, b.Kind)
			count[b.Title]++
		}
	}
	t.Logf("the way back: %v", back)
	if back[0] != "return-started" || back[len(back)-1] != "return-done" || count["[lab] ceph-1 is back"] != 1 || count["[lab] compute-1 is back"] != 1 {
		t.Errorf("the way back: %v (%v)", back, count)
	}
	for title, n := range count {
		if n != 1 {
			t.Errorf("%q sent %d times", title, n)
		}
	}
}
