// Package status gathers the whole site's state into one Snapshot, from
// the daemons' documented local interfaces only: their /metrics endpoints
// on the gate's loopback and their state files on /perm (upsd's plan
// journal, dyndns's published state, bootstrapd's host state, the
// bastion's audit log). It renders the snapshot as one server-side HTML
// page (html/template, an embedded stylesheet, inline SVG graphs from
// internal/history, no JavaScript) and as JSON, behind gokrazy's password,
// and derives the events that internal/alert sends from the transitions
// between snapshots.
package status

import "time"

// Snapshot is the site at one moment; the JSON endpoint serves it as is.
type Snapshot struct {
	Site    string    `json:"site"`
	Time    time.Time `json:"time"`
	Power   *Power    `json:"power,omitempty"`
	Tunnel  *Tunnel   `json:"tunnel,omitempty"`
	DNS     *DNS      `json:"dns,omitempty"`
	Hosts   []Host    `json:"hosts"`
	Bastion *Bastion  `json:"bastion,omitempty"`
	Gate    Gate      `json:"gate"`
	// Errors says, per daemon, why its data is missing (not answering,
	// unreadable state file).
	Errors map[string]string `json:"errors,omitempty"`
}

// Power is the UPS and the shutdown plan (upsd).
type Power struct {
	Status    string   `json:"status"` // ups.status, e.g. "OB DISCHRG"
	Flags     []string `json:"flags"`
	Charge    *float64 `json:"charge_percent,omitempty"`
	Runtime   *float64 `json:"runtime_seconds,omitempty"`
	Load      *float64 `json:"load_percent,omitempty"`
	OnBattery float64  `json:"on_battery_seconds"`
	Phase     string   `json:"plan_phase"` // idle, group NAME, ups-off, poweroff
	// ReturnPhase is the return plan's phase, when upsd runs one.
	ReturnPhase string `json:"return_phase,omitempty"`
	// Journal is the plan journal in progress, else the newest archived
	// one (JournalFile says which).
	Journal     []JournalEntry `json:"journal,omitempty"`
	JournalFile string         `json:"journal_file,omitempty"`
	// Return is the return plan's journal (after an outage), the same way.
	Return     []JournalEntry `json:"return_journal,omitempty"`
	ReturnFile string         `json:"return_journal_file,omitempty"`
}

// OnLine says whether the UPS reports line power.
func (p *Power) OnLine() bool { return hasFlag(p.Flags, "OL") }

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// JournalEntry is one line of upsd's plan journal.
type JournalEntry struct {
	Step   string    `json:"step"` // start, group, ups-off, poweroff; the return plan's return-start, charged, up, missing, undo, kept, return-done, abandoned
	Group  string    `json:"group,omitempty"`
	Host   string    `json:"host,omitempty"`
	Pre    string    `json:"pre,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Tunnel is the WireGuard tunnel (vpn).
type Tunnel struct {
	Backend   string  `json:"backend,omitempty"`
	Active    string  `json:"active_hub,omitempty"`
	Hubs      []Hub   `json:"hubs"`
	Failovers float64 `json:"hub_switches"`
}

// Hub is one VPS hub.
type Hub struct {
	Name         string   `json:"name"`
	Active       bool     `json:"active"`
	Up           bool     `json:"up"`
	HandshakeAge *float64 `json:"handshake_age_seconds,omitempty"`
	Endpoint     string   `json:"endpoint,omitempty"`
	RxBytes      float64  `json:"receive_bytes"`
	TxBytes      float64  `json:"transmit_bytes"`
}

// ActiveHub returns the hub the tunnel routes through, if any.
func (t *Tunnel) ActiveHub() (Hub, bool) {
	for _, h := range t.Hubs {
		if h.Active {
			return h, true
		}
	}
	return Hub{}, false
}

// DNS is the public address and the records (dyndns).
type DNS struct {
	Addresses  []Address   `json:"addresses"`
	LastChange *time.Time  `json:"last_change,omitempty"`
	Records    []DNSRecord `json:"records"`
	Requests   float64     `json:"requests"`
	Failures   float64     `json:"failures"`
}

// Address is the public address of one family.
type Address struct {
	Family  string `json:"family"`
	Address string `json:"address"`
}

// DNSRecord is one record's published state.
type DNSRecord struct {
	Name      string     `json:"name"`
	Value     string     `json:"value,omitempty"`
	Updated   *time.Time `json:"updated,omitempty"`
	Blocked   string     `json:"blocked,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Failures  int        `json:"failures,omitempty"`
}

// Host is one server of the site.
type Host struct {
	Name       string     `json:"name"`
	IP         string     `json:"ip"`
	MACs       []string   `json:"macs"`
	Role       string     `json:"role"`
	LastBoot   *time.Time `json:"last_pxe_boot,omitempty"`
	LastBootTo string     `json:"last_boot_to,omitempty"`
	Reimage    string     `json:"reimage"` // "", flagged, installing, written
	Progress   string     `json:"progress,omitempty"`
	LastResult string     `json:"last_result,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	Installed  *time.Time `json:"installed_at,omitempty"`
	// NUT is "connected", "not connected" or "" (not a NUT host, or upsd
	// not running).
	NUT string `json:"nut_secondary,omitempty"`
	// Power is upsd's view (gate_ups_host_state: up, shutting-down,
	// logged-out, down, timeout, powering-on, missing) when it has one,
	// else up (its upsmon connected), down (not, after a plan) or unknown.
	Power string `json:"power"`
}

// Bastion is the SSH jump host.
type Bastion struct {
	OpenChannels *float64     `json:"open_channels,omitempty"`
	Connections  float64      `json:"connections"`
	AuthFailures float64      `json:"auth_failures"`
	Bans         float64      `json:"bans"`
	Audit        []AuditEntry `json:"recent_audit"`
}

// AuditEntry is one record of the bastion's audit log.
type AuditEntry struct {
	Time        string `json:"time"`
	User        string `json:"user"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Duration    string `json:"duration"`
	Result      string `json:"result"`
}

// Gate is the Pi itself.
type Gate struct {
	Hostname    string  `json:"hostname"`
	Build       string  `json:"build"`
	Uptime      float64 `json:"uptime_seconds"`
	ClockSynced *bool   `json:"clock_synced,omitempty"`
	PermUsed    uint64  `json:"perm_used_bytes"`
	PermTotal   uint64  `json:"perm_total_bytes"`
}
