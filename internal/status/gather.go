package status

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gate/config"
	"gate/internal/bootstrap"
	"gate/internal/dyndns"
)

// The metrics read from the daemons (README: "Metrics").
const (
	mUPSCharge    = "gate_ups_battery_charge_percent"
	mUPSRuntime   = "gate_ups_battery_runtime_seconds"
	mUPSLoad      = "gate_ups_load_percent"
	mUPSOnBattery = "gate_ups_on_battery_seconds"
	mUPSStatus    = "gate_ups_status"
	mUPSPhase     = "gate_ups_plan_phase"
	mUPSLogins    = "gate_ups_client_logins"
	mUPSHostState = "gate_ups_host_state"   // {host, state}: the plans' view of each host, when upsd has it
	mUPSReturn    = "gate_ups_return_phase" // {phase}: the return plan's, when upsd has one

	mVPNBackend   = "gate_vpn_backend_info"
	mVPNActive    = "gate_vpn_hub_active"
	mVPNUp        = "gate_vpn_hub_up"
	mVPNHandshake = "gate_vpn_handshake_age_seconds"
	mVPNRx        = "gate_vpn_receive_bytes_total"
	mVPNTx        = "gate_vpn_transmit_bytes_total"
	mVPNEndpoint  = "gate_vpn_endpoint_info"
	mVPNSwitches  = "gate_vpn_hub_switches_total"

	mDNSAddress    = "gate_dyndns_address_info"
	mDNSLastChange = "gate_dyndns_last_change_timestamp_seconds"
	mDNSRequests   = "gate_dyndns_requests_total"
	mDNSFailures   = "gate_dyndns_failures_total"

	mBastionOpen     = "gate_bastion_channels_open"
	mBastionConns    = "gate_bastion_connections_total"
	mBastionAuthFail = "gate_bastion_auth_failures_total"
	mBastionBans     = "gate_bastion_bans_total"

	mClockSynced = "gate_clock_synced"
)

// DefaultEndpoints are the daemons' /metrics on the gate (README:
// "Conventions of the daemons"); clock is the clock daemon's, optional.
var DefaultEndpoints = map[string]string{
	"vpn":        "http://127.0.0.1:9101/metrics",
	"dyndns":     "http://127.0.0.1:9102/metrics",
	"upsd":       "http://127.0.0.1:9103/metrics",
	"bootstrapd": "http://127.0.0.1:9104/metrics",
	"bastion":    "http://127.0.0.1:9105/metrics",
	"clock":      "http://127.0.0.1:9106/metrics",
}

// Gatherer reads the site's state.
type Gatherer struct {
	Config *config.Config
	// Endpoints maps a daemon's name to its /metrics URL.
	Endpoints map[string]string
	// StateRoot holds the daemons' state directories (/perm/gate).
	StateRoot string
	// Perm is the mount whose usage is shown (/perm).
	Perm   string
	Build  string
	Client *http.Client
	Now    func() time.Time
	// Uptime returns the system's uptime (default: /proc/uptime).
	Uptime func() (time.Duration, error)
}

// enabled says which daemons the site file runs.
func (g *Gatherer) enabled() map[string]bool {
	c := g.Config
	return map[string]bool{"vpn": c.VPN != nil, "dyndns": c.DynDNS != nil, "upsd": c.UPS != nil,
		"bootstrapd": c.Bootstrap != nil, "bastion": c.Bastion != nil, "clock": true}
}

// Gather reads every source (the endpoints concurrently, each bounded by
// ctx) and returns the snapshot; what could not be read is in Errors.
func (g *Gatherer) Gather(ctx context.Context) *Snapshot {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	c := g.Config
	s := &Snapshot{Site: c.Site.Name, Time: now(), Errors: map[string]string{}}
	client := g.Client
	if client == nil {
		client = &http.Client{Timeout: 3 * time.Second}
	}
	on := g.enabled()
	ms := map[string]Metrics{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, url := range g.Endpoints {
		if !on[name] || url == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := Scrape(ctx, client, url)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if name != "clock" { // optional: absent until the clock daemon runs
					s.Errors[name] = fmt.Sprintf("metrics: %v", err)
				}
				return
			}
			ms[name] = m
		}()
	}
	wg.Wait()

	if c.UPS != nil {
		s.Power = g.power(ms["upsd"], s.Errors)
	}
	if c.VPN != nil {
		s.Tunnel = g.tunnel(ms["vpn"])
	}
	if c.DynDNS != nil {
		s.DNS = g.dns(ms["dyndns"], s.Errors)
	}
	s.Hosts = g.hosts(ms["upsd"], s.Power, s.Errors)
	if c.Bastion != nil {
		s.Bastion = g.bastion(ms["bastion"], s.Errors)
	}
	s.Gate = g.gate(ms["clock"])
	if len(s.Errors) == 0 {
		s.Errors = nil
	}
	return s
}

func ptr(v float64, ok bool) *float64 {
	if !ok || math.IsNaN(v) {
		return nil
	}
	return &v
}

func (g *Gatherer) power(m Metrics, errs map[string]string) *Power {
	p := &Power{Phase: "unknown", Flags: []string{}}
	if m != nil {
		p.Charge = ptr(m.Get(mUPSCharge))
		p.Runtime = ptr(m.Get(mUPSRuntime))
		p.Load = ptr(m.Get(mUPSLoad))
		p.OnBattery, _ = m.Get(mUPSOnBattery)
		for _, s := range m.All(mUPSStatus) {
			if s.Value == 1 {
				p.Flags = append(p.Flags, s.Labels["flag"])
			}
		}
		p.Flags = statusOrder(p.Flags)
		p.Status = strings.Join(p.Flags, " ")
		for _, s := range m.All(mUPSPhase) {
			if s.Value == 1 {
				p.Phase = s.Labels["phase"]
			}
		}
		for _, s := range m.All(mUPSReturn) {
			if s.Value == 1 {
				p.ReturnPhase = s.Labels["phase"]
			}
		}
	}
	j, file, err := ReadJournals(filepath.Join(g.StateRoot, "upsd"), PlanJournal)
	if err != nil {
		errs["upsd journal"] = err.Error()
	}
	if len(j) > 0 {
		p.Journal, p.JournalFile = j[len(j)-1].Entries, filepath.Base(file)
	}
	r, file, err := ReadJournals(filepath.Join(g.StateRoot, "upsd"), ReturnJournal)
	if err != nil {
		errs["upsd return journal"] = err.Error()
	}
	if len(r) > 0 {
		p.Return, p.ReturnFile = r[len(r)-1].Entries, filepath.Base(file)
	}
	return p
}

// statusOrder sorts ups.status flags as NUT prints them (OL/OB first).
func statusOrder(flags []string) []string {
	order := map[string]int{"FSD": 0, "OL": 1, "OB": 2, "LB": 3, "HB": 4, "RB": 5, "CHRG": 6, "DISCHRG": 7}
	slices.SortFunc(flags, func(a, b string) int {
		oa, ok := order[a]
		if !ok {
			oa = 99
		}
		ob, ok := order[b]
		if !ok {
			ob = 99
		}
		return cmp.Or(cmp.Compare(oa, ob), strings.Compare(a, b))
	})
	return flags
}

// Journal is one plan journal file.
type Journal struct {
	File    string
	Entries []JournalEntry
}

// upsd's journals (JSON lines), in its state directory.
const (
	PlanJournal   = "plan.journal"   // the shutdown plan
	ReturnJournal = "return.journal" // the return plan (after the outage)
)

// ReadJournals reads one of upsd's journals in dir: the archived ones
// (NAME.<time>) oldest first, then the one in progress (NAME). It returns
// them, the newest's file, and the first error.
func ReadJournals(dir, name string) ([]Journal, string, error) {
	files, _ := filepath.Glob(filepath.Join(dir, name+".*"))
	sort.Strings(files) // the suffix is a UTC timestamp
	files = append(files, filepath.Join(dir, name))
	var out []Journal
	var first error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			first = cmp.Or(first, fmt.Errorf("plan journal %s: %w", f, err))
			continue
		}
		j := Journal{File: f}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var e JournalEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Step != "" {
				j.Entries = append(j.Entries, e)
			}
		}
		if len(j.Entries) > 0 {
			out = append(out, j)
		}
	}
	if len(out) == 0 {
		return nil, "", first
	}
	return out, out[len(out)-1].File, first
}

func (g *Gatherer) tunnel(m Metrics) *Tunnel {
	t := &Tunnel{Hubs: []Hub{}}
	for _, h := range g.Config.VPN.Hubs {
		hub := Hub{Name: h.Name}
		if m != nil {
			a, _ := m.Get(mVPNActive, "hub", h.Name)
			u, _ := m.Get(mVPNUp, "hub", h.Name)
			hub.Active, hub.Up = a == 1, u == 1
			hub.HandshakeAge = ptr(m.Get(mVPNHandshake, "hub", h.Name))
			hub.RxBytes, _ = m.Get(mVPNRx, "hub", h.Name)
			hub.TxBytes, _ = m.Get(mVPNTx, "hub", h.Name)
			for _, s := range m.All(mVPNEndpoint) {
				if s.Labels["hub"] == h.Name && s.Value == 1 {
					hub.Endpoint = s.Labels["endpoint"]
				}
			}
		}
		if hub.Active {
			t.Active = h.Name
		}
		t.Hubs = append(t.Hubs, hub)
	}
	if m != nil {
		t.Failovers = m.Sum(mVPNSwitches)
		for _, s := range m.All(mVPNBackend) {
			if s.Value == 1 {
				t.Backend = s.Labels["backend"]
			}
		}
	}
	return t
}

func (g *Gatherer) dns(m Metrics, errs map[string]string) *DNS {
	d := &DNS{Addresses: []Address{}, Records: []DNSRecord{}}
	if m != nil {
		for _, s := range m.All(mDNSAddress) {
			if s.Value == 1 {
				d.Addresses = append(d.Addresses, Address{Family: s.Labels["family"], Address: s.Labels["address"]})
			}
		}
		if v, ok := m.Get(mDNSLastChange); ok && v > 0 {
			t := time.Unix(int64(v), 0)
			d.LastChange = &t
		}
		d.Requests, d.Failures = m.Sum(mDNSRequests), m.Sum(mDNSFailures)
	}
	var st dyndns.State
	p := filepath.Join(g.StateRoot, "dyndns", "state.json")
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			errs["dyndns state"] = fmt.Sprintf("%s: %v", p, err)
		}
	}
	// The state's records (key: FQDN/type), else the site file's, not
	// yet published.
	keys := make([]string, 0, len(st.Records))
	for k := range st.Records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rs := st.Records[k]
		rec := DNSRecord{Name: strings.TrimSpace(strings.Replace(k, "./", " ", 1))} // "gate.example.net A"
		if rs == nil {
			continue
		}
		if rs.Addr.IsValid() {
			rec.Value = rs.Addr.String()
		}
		if !rs.Updated.IsZero() {
			u := rs.Updated
			rec.Updated = &u
		}
		rec.Blocked, rec.LastError, rec.Failures = rs.Blocked, rs.LastError, rs.Failures
		d.Records = append(d.Records, rec)
	}
	if len(d.Records) == 0 {
		for _, r := range g.Config.DynDNS.Records {
			d.Records = append(d.Records, DNSRecord{Name: r.Name + " " + r.Type})
		}
	}
	return d
}

func (g *Gatherer) hosts(ups Metrics, pw *Power, errs map[string]string) []Host {
	states := map[string]*bootstrap.HostState{}
	p := filepath.Join(g.StateRoot, "bootstrapd", "hosts.json")
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &states); err != nil {
			errs["bootstrapd state"] = fmt.Sprintf("%s: %v", p, err)
		}
	}
	planRan := pw != nil && len(pw.Journal) > 0
	out := []Host{}
	for _, h := range g.Config.Hosts {
		o := Host{Name: h.Name, IP: h.IP.String(), Role: h.Role, Power: "unknown"}
		for _, m := range h.MACs {
			o.MACs = append(o.MACs, m.String())
		}
		if st := states[h.Name]; st != nil {
			o.Reimage, o.LastBootTo, o.LastResult, o.LastError = st.Phase, st.LastBootTo, st.LastResult, st.LastError
			if !st.LastBoot.IsZero() {
				t := st.LastBoot
				o.LastBoot = &t
			}
			if !st.InstalledAt.IsZero() {
				t := st.InstalledAt
				o.Installed = &t
			}
			if st.Total > 0 && st.Phase == bootstrap.PhaseInstalling {
				o.Progress = fmt.Sprintf("%.0f%%", 100*float64(st.Written)/float64(st.Total))
			}
		}
		if g.Config.UPS != nil && h.Shutdown.Method == "nut" && ups != nil {
			n, _ := ups.Get(mUPSLogins, "user", h.Shutdown.NUTUser)
			o.NUT = "not connected"
			if n > 0 {
				o.NUT = "connected"
				o.Power = "up"
			} else if planRan {
				o.Power = "down"
			}
		}
		for _, s := range ups.All(mUPSHostState) { // upsd's own view wins
			if s.Labels["host"] == h.Name && s.Value == 1 {
				o.Power = s.Labels["state"]
			}
		}
		out = append(out, o)
	}
	return out
}

// auditTail is how much of the audit log's end is read.
const auditTail = 64 << 10

func (g *Gatherer) bastion(m Metrics, errs map[string]string) *Bastion {
	b := &Bastion{Audit: []AuditEntry{}}
	if m != nil {
		b.OpenChannels = ptr(m.Get(mBastionOpen))
		b.Connections = m.Sum(mBastionConns)
		b.AuthFailures = m.Sum(mBastionAuthFail)
		b.Bans = m.Sum(mBastionBans)
	}
	p := filepath.Join(g.StateRoot, "bastion", "audit.log")
	lines, err := tail(p, auditTail, 10)
	if err != nil && !os.IsNotExist(err) {
		errs["bastion audit"] = err.Error()
	}
	for i := len(lines) - 1; i >= 0; i-- { // newest first
		var a AuditEntry
		if json.Unmarshal([]byte(lines[i]), &a) == nil {
			b.Audit = append(b.Audit, a)
		}
	}
	return b
}

// tail returns the last n whole lines within the last max bytes of a file.
func tail(path string, max int64, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, max))
	if err != nil {
		return nil, err
	}
	if off > 0 { // the first line is cut
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

func (g *Gatherer) gate(clock Metrics) Gate {
	gt := Gate{Hostname: g.Config.Gate.Hostname, Build: g.Build}
	up := g.Uptime
	if up == nil {
		up = procUptime
	}
	if d, err := up(); err == nil {
		gt.Uptime = d.Seconds()
	}
	if clock != nil {
		if v, ok := clock.Get(mClockSynced); ok {
			b := v == 1
			gt.ClockSynced = &b
		}
	}
	if g.Perm != "" {
		var st syscall.Statfs_t
		if syscall.Statfs(g.Perm, &st) == nil {
			gt.PermTotal = st.Blocks * uint64(st.Bsize)
			gt.PermUsed = (st.Blocks - st.Bfree) * uint64(st.Bsize)
		}
	}
	return gt
}

func procUptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/uptime: empty")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	return time.Duration(s * float64(time.Second)), err
}
