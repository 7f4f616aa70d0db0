package status

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gate/config"
	"gate/internal/alert"
	"gate/internal/history"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const siteYAML = `site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-1, password: "inline:pw"}
vpn:
  private_key: "inline:x"
  hubs:
    - {name: vps1, endpoint: "203.0.113.10:51820", public_key: "j1tY7gZ7J7/K0InOkSh/u1r4fybUtEJaNccI4wEOVUI=", gate_address: 10.99.0.2/24, hub_address: 10.99.0.1}
    - {name: vps2, endpoint: "203.0.113.20:51820", public_key: "j1tY7gZ7J7/K0InOkSh/u1r4fybUtEJaNccI4wEOVUI=", gate_address: 10.98.0.2/24, hub_address: 10.98.0.1}
dyndns:
  provider: {type: rfc2136, server: "ns.example.net:53", zone: example.net, tsig_key: k, tsig_secret: "inline:c2VjcmV0"}
  records: [{name: home.example.net}]
ups:
  source: nut://192.168.1.30/ups
  users: [{name: ceph-1, password: "inline:a"}, {name: compute-1, password: "inline:b"}]
  shutdown_groups: [{name: compute}, {name: ceph}]
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: 192.168.1.11, role: ceph}
  - {name: compute-1, macs: ["52:54:00:00:02:01"], ip: 192.168.1.21, role: compute}
roles: {ceph: {installer: {kernel: "http://192.168.1.2/k"}}, compute: {installer: {kernel: "http://192.168.1.2/k"}}}
bastion:
  users: [{name: admin, keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtQUDhmPpnEbaGEcbrkMTm0e+oVbeqIyQQQUdh2Ep11 admin@laptop"], allow: ["*:22"]}]
bootstrap: {}
status: {}
alerts: {webhook: {url: "http://127.0.0.1:1/x"}}
`

func testConfig(t testing.TB) *config.Config {
	t.Helper()
	c, err := config.Parse("site.yaml", []byte(siteYAML), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// metricsText is what the daemons' /metrics say in the fixture.
var metricsText = map[string]string{
	"upsd": `gate_ups_battery_charge_percent 87
gate_ups_battery_runtime_seconds 1500
gate_ups_load_percent 23
gate_ups_on_battery_seconds 42
gate_ups_status{flag="OB"} 1
gate_ups_status{flag="DISCHRG"} 1
gate_ups_plan_phase{phase="idle"} 1
gate_ups_client_logins{user="ceph-1"} 1
gate_ups_client_logins{user="compute-1"} 0
gate_ups_return_phase{phase="group ceph"} 1
gate_ups_return_phase{phase="idle"} 0
gate_ups_host_state{host="compute-1",state="powering-on"} 1
gate_ups_host_state{host="compute-1",state="down"} 0
`,
	"vpn": `gate_vpn_backend_info{backend="userspace"} 1
gate_vpn_hub_active{hub="vps1"} 0
gate_vpn_hub_active{hub="vps2"} 1
gate_vpn_hub_up{hub="vps1"} 0
gate_vpn_hub_up{hub="vps2"} 1
gate_vpn_handshake_age_seconds{hub="vps2"} 17
gate_vpn_receive_bytes_total{hub="vps2"} 2048
gate_vpn_transmit_bytes_total{hub="vps2"} 4096
gate_vpn_endpoint_info{hub="vps2",endpoint="203.0.113.20:51820"} 1
gate_vpn_hub_switches_total{from="vps1",to="vps2"} 1
`,
	"dyndns": `gate_dyndns_address_info{family="ipv4",address="198.51.100.7"} 1
gate_dyndns_last_change_timestamp_seconds 1.7641584e+09
gate_dyndns_requests_total{provider="rfc2136"} 3
gate_dyndns_failures_total{provider="rfc2136"} 1
`,
	"bastion": `gate_bastion_channels_open 2
gate_bastion_connections_total{result="accepted"} 5
gate_bastion_auth_failures_total{method="publickey"} 7
gate_bastion_bans_total 1
`,
	"bootstrapd": "",
	"clock":      "gate_clock_synced 1\n",
}

// fixture serves metricsText and writes the daemons' state files.
func fixture(t *testing.T) *Gatherer {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		txt, ok := metricsText[strings.Trim(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, txt)
	}))
	t.Cleanup(srv.Close)
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("upsd/plan.journal.20261125T010000Z", `{"step":"start","reason":"old","at":"2026-11-25T01:00:00Z"}`+"\n"+`{"step":"poweroff","at":"2026-11-25T01:05:00Z"}`+"\n")
	write("upsd/plan.journal", `{"step":"start","reason":"on battery and low battery","at":"2026-11-26T11:59:00Z"}`+"\n"+`{"step":"group","group":"compute","at":"2026-11-26T11:59:30Z"}`+"\n"+"garbage\n")
	write("upsd/return.journal", `{"step":"return-start","reason":"plan.journal.20261125T010000Z","at":"2026-11-25T02:00:00Z"}`+"\n"+`{"step":"up","group":"ceph","host":"ceph-1","at":"2026-11-25T02:01:00Z"}`+"\n")
	write("bootstrapd/hosts.json", `{"ceph-1":{"phase":"installing","last_boot":"2026-11-26T11:00:00Z","last_boot_to":"imager","written":50,"total":200},"compute-1":{"phase":"","last_result":"ok","installed_at":"2026-11-20T10:00:00Z"}}`)
	write("dyndns/state.json", `{"config_hash":"x","records":{"home.example.net./A":{"addr":"198.51.100.7","updated":"2026-11-26T10:00:00Z","blocked":"badauth","last_error":"badauth"}}}`)
	var audit strings.Builder
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&audit, `{"time":"2026-11-26T11:%02d:00Z","user":"admin","key":"k","source":"203.0.113.99:5555","destination":"ceph-1:22","duration":"1s","result":"closed %d"}`+"\n", i, i)
	}
	write("bastion/audit.log", audit.String())
	eps := map[string]string{}
	for d := range metricsText {
		eps[d] = srv.URL + "/" + d
	}
	return &Gatherer{Config: testConfig(t), Endpoints: eps, StateRoot: root, Perm: root, Build: "v1 abc",
		Now: func() time.Time { return t0 }, Uptime: func() (time.Duration, error) { return 3 * time.Hour, nil }}
}

func TestGather(t *testing.T) {
	g := fixture(t)
	s := g.Gather(context.Background())
	if s.Errors != nil {
		t.Errorf("errors: %v", s.Errors)
	}
	p := s.Power
	if p.Status != "OB DISCHRG" || *p.Charge != 87 || *p.Runtime != 1500 || *p.Load != 23 || p.OnBattery != 42 || p.Phase != "idle" {
		t.Errorf("power: %+v", p)
	}
	if len(p.Journal) != 2 || p.JournalFile != "plan.journal" || p.Journal[1].Group != "compute" {
		t.Errorf("journal: %s %+v", p.JournalFile, p.Journal)
	}
	tn := s.Tunnel
	if tn.Active != "vps2" || tn.Backend != "userspace" || tn.Failovers != 1 || len(tn.Hubs) != 2 || tn.Hubs[1].Endpoint != "203.0.113.20:51820" || *tn.Hubs[1].HandshakeAge != 17 || tn.Hubs[0].Up || tn.Hubs[0].HandshakeAge != nil {
		t.Errorf("tunnel: %+v", tn)
	}
	d := s.DNS
	if len(d.Addresses) != 1 || d.Addresses[0].Address != "198.51.100.7" || d.LastChange == nil || len(d.Records) != 1 || d.Records[0].Name != "home.example.net A" || d.Records[0].Blocked != "badauth" || d.Records[0].Value != "198.51.100.7" {
		t.Errorf("dns: %+v", d)
	}
	h := s.Hosts
	if len(h) != 2 || h[0].Reimage != "installing" || h[0].Progress != "25%" || h[0].NUT != "connected" || h[0].Power != "up" || h[1].NUT != "not connected" || h[1].Power != "powering-on" || h[1].LastResult != "ok" || h[0].MACs[0] != "52:54:00:00:01:01" {
		t.Errorf("hosts: %+v", h)
	}
	b := s.Bastion
	if *b.OpenChannels != 2 || b.Bans != 1 || b.AuthFailures != 7 || len(b.Audit) != 10 || b.Audit[0].Result != "closed 14" {
		t.Errorf("bastion: %+v", b)
	}
	if s.Gate.Hostname != "gate-1" || s.Gate.ClockSynced == nil || !*s.Gate.ClockSynced || s.Gate.Uptime != 3*3600 || s.Gate.PermTotal == 0 {
		t.Errorf("gate: %+v", s.Gate)
	}
	// A daemon that does not answer is named, the rest still shown.
	g.Endpoints["vpn"] = "http://127.0.0.1:1/metrics"
	s = g.Gather(context.Background())
	if !strings.Contains(s.Errors["vpn"], "metrics") || s.Power.Status == "" {
		t.Errorf("errors %v", s.Errors)
	}
}

func fullHistory(now time.Time) *history.History {
	h := history.New(SeriesNames, history.DefaultTiers...)
	for m := 7 * 24 * 60; m >= 0; m-- {
		h.Add(now.Add(-time.Duration(m)*time.Minute), []float64{100 - float64(m%100), 20, float64(m % 120)})
	}
	return h
}

func TestRenderEverySection(t *testing.T) {
	s := fixture(t).Gather(context.Background())
	var b bytes.Buffer
	if err := Render(&b, s, fullHistory(s.Time)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<section id="power">`, "OB DISCHRG", "87 %", "1500 s", "23 %", "42s", "on battery and low battery", "Return plan journal", "return-start", "<th>Return plan</th><td>group ceph</td>", "powering-on",
		`<section id="tunnel">`, "vps2 (active)", "17 s", "203.0.113.20:51820", "2.0 KiB", "4.0 KiB", "hub switches: 1",
		`<section id="dns">`, "198.51.100.7", "home.example.net A", "blocked: badauth", "2026-11-26 10:00:00 UTC",
		`<section id="hosts">`, "192.168.1.11", "52:54:00:00:01:01", "installing 25%", "connected", "not connected",
		`<section id="bastion">`, "Open channels: <b>2</b>", "203.0.113.99:5555", "closed 14",
		`<section id="gate">`, "gate-1", "v1 abc", "3h0m0s", ">synced<",
		`<section id="history">`, "Battery charge, last 6 hours", "Tunnel handshake age, last 7 days",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	polys := regexp.MustCompile(`<polyline class="line" fill="none" points="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(polys) != 6 {
		t.Fatalf("%d graphs with points, want 6", len(polys))
	}
	if n := len(strings.Fields(polys[0][1])); n < 300 {
		t.Errorf("the 6-hour charge graph has %d points", n)
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page loads something from elsewhere or has a script")
	}
	// Every section renders without its daemon too.
	empty := &Snapshot{Site: "x", Time: t0, Power: &Power{}, Tunnel: &Tunnel{}, DNS: &DNS{}, Bastion: &Bastion{}, Errors: map[string]string{"upsd": "metrics: refused"}}
	b.Reset()
	if err := Render(&b, empty, history.New(SeriesNames, history.DefaultTiers...)); err != nil {
		t.Fatal(err)
	}
	f := false
	empty.Gate.ClockSynced = &f
	b.Reset()
	Render(&b, empty, history.New(SeriesNames, history.DefaultTiers...))
	if !strings.Contains(b.String(), "NOT synced") {
		t.Error("an unsynced clock is not shown")
	}
	empty.Gate.ClockSynced = nil
	b.Reset()
	if err := Render(&b, empty, history.New(SeriesNames, history.DefaultTiers...)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Not answering", "metrics: refused", "No shutdown plan has run", "no data yet", "No audit records yet", "No hosts in the site file", "unknown (no clock daemon)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
}

func TestServer(t *testing.T) {
	s := fixture(t).Gather(context.Background())
	srv := &Server{Password: "pw", Allow: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}, History: fullHistory(s.Time)}
	do := func(remote, user, pw, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = remote
		if user != "" {
			r.SetBasicAuth(user, pw)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	if w := do("127.0.0.1:1", "gokrazy", "pw", "/"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("before the first gather: %d", w.Code)
	}
	srv.Set(s)
	for _, tc := range []struct {
		remote, user, pw, path string
		code                   int
	}{
		{"192.168.1.50:1234", "gokrazy", "pw", "/", 200},
		{"[::1]:1234", "gokrazy", "pw", "/status.json", 200},
		{"192.168.1.50:1234", "gokrazy", "wrong", "/", 401},
		{"192.168.1.50:1234", "", "", "/status.json", 401},
		{"192.168.1.50:1234", "admin", "pw", "/", 401},
		{"10.0.0.5:1234", "gokrazy", "pw", "/", 403},
		{"192.168.1.50:1234", "gokrazy", "pw", "/nope", 404},
	} {
		if w := do(tc.remote, tc.user, tc.pw, tc.path); w.Code != tc.code {
			t.Errorf("%s %s:%s %s: %d, want %d", tc.remote, tc.user, tc.pw, tc.path, w.Code, tc.code)
		}
	}
	w := do("127.0.0.1:1", "gokrazy", "pw", "/status.json")
	var back Snapshot
	if err := json.Unmarshal(w.Body.Bytes(), &back); err != nil || back.Power.Status != "OB DISCHRG" || back.Tunnel.Active != "vps2" {
		t.Errorf("JSON: %v %+v", err, back.Power)
	}
	if h := do("127.0.0.1:1", "gokrazy", "pw", "/").Header().Get("Content-Security-Policy"); !strings.Contains(h, "default-src 'none'") {
		t.Errorf("CSP %q", h)
	}
}

func kinds(es []alert.Event) string {
	var k []string
	for _, e := range es {
		k = append(k, e.Kind)
	}
	return strings.Join(k, ",")
}

func TestWatcher(t *testing.T) {
	c := testConfig(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "watch.json")
	w := &Watcher{Path: path, Config: c, TunnelDownAfter: time.Minute, HostBackAfter: 5 * time.Minute}
	charge := 90.0
	snap := func(at time.Duration, status string, hubUp bool, nut string) *Snapshot {
		flags := strings.Fields(status)
		return &Snapshot{Time: t0.Add(at), Power: &Power{Status: status, Flags: flags, Charge: &charge},
			Tunnel: &Tunnel{Active: "vps1", Hubs: []Hub{{Name: "vps1", Active: true, Up: hubUp}}},
			DNS:    &DNS{}, Bastion: &Bastion{},
			Hosts: []Host{{Name: "ceph-1", NUT: nut}, {Name: "compute-1", NUT: nut}}}
	}
	jdir := filepath.Join(dir, "upsd")
	os.MkdirAll(jdir, 0o700)
	journal := func(lines ...string) []Journal {
		os.WriteFile(filepath.Join(jdir, "plan.journal"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		j, _, err := ReadJournals(jdir, PlanJournal)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	step := func(s *Snapshot, j []Journal, want string) {
		t.Helper()
		got, err := w.Observe(s, j, nil)
		if err != nil {
			t.Fatal(err)
		}
		if kinds(got) != want {
			t.Errorf("at %s: events %q, want %q", s.Time.Sub(t0), kinds(got), want)
		}
	}
	step(snap(0, "OL", true, "connected"), nil, "") // baseline
	step(snap(time.Minute, "OB DISCHRG", true, "connected"), nil, "mains-lost")
	step(snap(2*time.Minute, "OB DISCHRG", true, "connected"), nil, "")
	start := `{"step":"start","reason":"low battery","at":"2026-11-26T12:03:00Z"}`
	step(snap(3*time.Minute, "OB LB", true, "connected"), journal(start), "low-battery,plan-started")
	group := `{"step":"group","group":"compute","at":"2026-11-26T12:04:00Z"}`
	// compute's turn is over and compute-1 is still connected.
	// upsd's outcome per host: compute-1 did not go down in its turn.
	host := `{"step":"host","group":"compute","host":"compute-1","outcome":"timeout","at":"2026-11-26T12:03:59Z"}`
	step(snap(4*time.Minute, "OB LB", true, "connected"), journal(start, host, group), "host-not-down,plan-group")
	step(snap(5*time.Minute, "OB LB", true, "connected"), journal(start, host, group), "")
	// The gate powers off; the next boot archives the journal before the
	// new statusd reads it: the rest is reported once, not the start again.
	all := []string{start, host, group, `{"step":"host","group":"ceph","host":"ceph-1","outcome":"down","down_s":3.2,"at":"2026-11-26T12:05:59Z"}`, `{"step":"group","group":"ceph","at":"2026-11-26T12:06:00Z"}`, `{"step":"ups-off","at":"2026-11-26T12:06:01Z"}`, `{"step":"poweroff","at":"2026-11-26T12:06:02Z"}`}
	journal(all...)
	os.Rename(filepath.Join(jdir, "plan.journal"), filepath.Join(jdir, "plan.journal.20261126T120300Z"))
	j, _, _ := ReadJournals(jdir, PlanJournal)
	w = &Watcher{Path: path, Config: c, TunnelDownAfter: time.Minute, HostBackAfter: 5 * time.Minute}
	step(snap(time.Hour, "OL CHRG", true, "not connected"), j, "plan-group,plan-ups-off,plan-finished,mains-back")
	// ceph-1 comes back, compute-1 does not.
	back := snap(time.Hour+3*time.Minute, "OL CHRG", true, "connected")
	back.Hosts[1].NUT = "not connected"
	step(back, j, "")
	back.Time = t0.Add(time.Hour + 6*time.Minute)
	step(back, j, "host-not-back")
	back.Time = t0.Add(time.Hour + 7*time.Minute)
	step(back, j, "")
	// The tunnel: down for less than a minute is nothing; longer is one
	// event, and one when it is back; a failover.
	at := 2 * time.Hour
	step(snap(at, "OL", false, "connected"), j, "")
	step(snap(at+30*time.Second, "OL", false, "connected"), j, "")
	step(snap(at+61*time.Second, "OL", false, "connected"), j, "tunnel-down")
	step(snap(at+2*time.Minute, "OL", false, "connected"), j, "")
	// A restart (a reboot) while it is down: the down time counts again
	// from the start, and the way back up is still told.
	w = &Watcher{Path: path, Config: c, TunnelDownAfter: time.Minute, HostBackAfter: 5 * time.Minute}
	step(snap(at+150*time.Second, "OL", false, "connected"), j, "")
	step(snap(at+3*time.Minute, "OL", true, "connected"), j, "tunnel-up")
	// Down, then statusd restarts before tunnel_down_after: the time
	// before the restart does not count.
	step(snap(at+200*time.Second, "OL", false, "connected"), j, "")
	w = &Watcher{Path: path, Config: c, TunnelDownAfter: time.Minute, HostBackAfter: 5 * time.Minute}
	step(snap(at+270*time.Second, "OL", false, "connected"), j, "")
	step(snap(at+275*time.Second, "OL", true, "connected"), j, "")
	fo := snap(at+290*time.Second, "OL", true, "connected")
	fo.Tunnel = &Tunnel{Active: "vps2", Hubs: []Hub{{Name: "vps2", Active: true, Up: true}}}
	step(fo, j, "tunnel-failover")
	// DNS blocked, re-imaging, a ban, the clock.
	s := snap(at+5*time.Minute, "OL", true, "connected")
	s.Tunnel = fo.Tunnel
	s.DNS.Records = []DNSRecord{{Name: "home.example.net A", Blocked: "badauth"}}
	s.Hosts[0].LastResult = "ok"
	s.Hosts[1].LastResult = "failed: sha256 mismatch"
	s.Bastion.Bans = 2
	f := false
	s.Gate.ClockSynced = &f
	step(s, j, "dns-blocked,reimage-done,reimage-failed,bastion-ban,clock-unsynced")
	s.Time = s.Time.Add(time.Minute)
	step(s, j, "")
	// A restarted statusd repeats nothing.
	w = &Watcher{Path: path, Config: c, TunnelDownAfter: time.Minute, HostBackAfter: 5 * time.Minute}
	step(s, j, "")
}

func TestWriteText(t *testing.T) {
	s := fixture(t).Gather(context.Background())
	var b bytes.Buffer
	if err := WriteText(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POWER", "OB DISCHRG", "charge 87%", "TUNNEL", "active vps2", "DNS", "BLOCKED: badauth", "HOSTS", "installing 25%", "BASTION", "open channels 2", "GATE", "clock synced"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// BenchmarkRender: the page of a full snapshot with a week of history.
func BenchmarkRender(b *testing.B) {
	s := &Snapshot{Site: "lab", Time: t0, Power: &Power{Status: "OL", Flags: []string{"OL"}}, Tunnel: &Tunnel{}, DNS: &DNS{}, Bastion: &Bastion{}}
	for i := 0; i < 4; i++ {
		s.Hosts = append(s.Hosts, Host{Name: fmt.Sprint("host-", i), IP: "192.168.1.1", MACs: []string{"52:54:00:00:00:01"}})
	}
	h := fullHistory(t0)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Render(&buf, s, h); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/page")
}

// The return plan's journal (upsd, after the outage): each step once; the
// watcher's own "did not come back" stays silent when upsd says it.
func TestWatcherReturnPlan(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...string) {
		os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	}
	write("plan.journal.20261126T120300Z", `{"step":"start","reason":"low battery","at":"2026-11-26T12:03:00Z"}`, `{"step":"poweroff","at":"2026-11-26T12:06:02Z"}`)
	w := &Watcher{Config: testConfig(t), HostBackAfter: time.Minute}
	snap := func(at time.Duration) *Snapshot {
		return &Snapshot{Time: t0.Add(at), Power: &Power{Status: "OL", Flags: []string{"OL"}},
			Hosts: []Host{{Name: "ceph-1", NUT: "connected"}, {Name: "compute-1", NUT: "not connected"}}}
	}
	read := func() ([]Journal, []Journal) {
		p, _, _ := ReadJournals(dir, PlanJournal)
		r, _, _ := ReadJournals(dir, ReturnJournal)
		return p, r
	}
	step := func(at time.Duration, want string) {
		t.Helper()
		p, r := read()
		got, err := w.Observe(snap(at), p, r)
		if err != nil {
			t.Fatal(err)
		}
		if kinds(got) != want {
			t.Errorf("at %s: %q, want %q", at, kinds(got), want)
		}
	}
	step(time.Hour, "") // baseline
	write("return.journal", `{"step":"return-start","reason":"plan.journal.20261126T120300Z","at":"2026-11-26T13:00:10Z"}`)
	step(time.Hour+time.Second, "return-started")
	write("return.journal", `{"step":"return-start","reason":"plan.journal.20261126T120300Z","at":"2026-11-26T13:00:10Z"}`,
		`{"step":"charged","at":"2026-11-26T13:01:00Z"}`,
		`{"step":"up","group":"ceph","host":"ceph-1","at":"2026-11-26T13:02:00Z"}`,
		`{"step":"undo","group":"ceph","pre":"ceph-noout","at":"2026-11-26T13:02:01Z"}`,
		`{"step":"missing","group":"compute","host":"compute-1","at":"2026-11-26T13:10:00Z"}`,
		`{"step":"kept","group":"compute","pre":"k3s-drain","reason":"compute-1 is not back","at":"2026-11-26T13:10:01Z"}`,
		`{"step":"return-done","at":"2026-11-26T13:10:02Z"}`)
	os.Rename(filepath.Join(dir, "return.journal"), filepath.Join(dir, "return.journal.20261126T130010Z")) // archived
	step(time.Hour+20*time.Minute, "return-charged,host-back,return-undo,host-not-back,return-kept,return-done")
	step(time.Hour+30*time.Minute, "")
}

// A site with the status page and no alerts section gives the watcher no
// thresholds: the defaults apply, so a start before the first handshake
// reports nothing (before, "Tunnel down for 0s" and "Tunnel up again" at
// every boot).
func TestWatcherDefaultThresholds(t *testing.T) {
	w := &Watcher{Config: testConfig(t)} // statusd without alerts
	snap := func(at time.Duration, up bool) *Snapshot {
		return &Snapshot{Time: t0.Add(at), Tunnel: &Tunnel{Active: "vps1", Hubs: []Hub{{Name: "vps1", Active: true, Up: up}}}}
	}
	for _, tc := range []struct {
		at   time.Duration
		up   bool
		want string
	}{
		{0, false, ""}, // baseline, before the first handshake
		{10 * time.Second, false, ""},
		{20 * time.Second, true, ""},
		{time.Minute, false, ""},
		{time.Minute + config.DefaultTunnelDownAfter - time.Second, false, ""},
		{time.Minute + config.DefaultTunnelDownAfter, false, "tunnel-down"},
		{time.Minute + config.DefaultTunnelDownAfter + 10*time.Second, true, "tunnel-up"},
	} {
		got, err := w.Observe(snap(tc.at, tc.up), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if kinds(got) != tc.want {
			t.Errorf("at %s (hub up %v): events %q, want %q", tc.at, tc.up, kinds(got), tc.want)
		}
	}
}
