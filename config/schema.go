// Package config is the site file: one YAML document that describes a whole
// site (its LAN, the gate, the VPS hubs, dynamic DNS, the UPS, the hosts,
// their roles and the bastion's users). Load decodes it strictly, applies
// defaults and validates it, reporting every problem with its FILE:LINE:COL.
//
// A section that is absent (a nil pointer) means the matching daemon is not
// started on the gate.
package config

import (
	"net/netip"
)

// Config is a whole site file.
type Config struct {
	Site      Site             `yaml:"site"`
	LAN       LAN              `yaml:"lan"`
	Gate      Gate             `yaml:"gate"`
	Time      Time             `yaml:"time"`
	VPN       *VPN             `yaml:"vpn"`
	DynDNS    *DynDNS          `yaml:"dyndns"`
	UPS       *UPS             `yaml:"ups"`
	Hosts     []Host           `yaml:"hosts"`
	Roles     map[string]*Role `yaml:"roles"`
	Bastion   *Bastion         `yaml:"bastion"`
	Bootstrap *Bootstrap       `yaml:"bootstrap"`
	Status    *Status          `yaml:"status"`
	Alerts    *Alerts          `yaml:"alerts"`
	Tailnet   *Tailnet         `yaml:"tailnet"`
	Firewall  *Firewall        `yaml:"firewall"`

	// File is the path the config was loaded from ("" for bytes).
	File string `yaml:"-"`
	// SecretsDir is where file: secret references are looked up.
	SecretsDir string `yaml:"-"`

	pos      positions
	warnings Problems
}

// Site names the site.
type Site struct {
	Name     string `yaml:"name"`
	Domain   string `yaml:"domain"`
	Timezone string `yaml:"timezone"` // default UTC
	// SecretsDir is the secrets directory on the admin's machine, relative
	// to the site file (default "secrets"). On the gate, secrets live in
	// /perm/gate/secrets whatever this says.
	SecretsDir string `yaml:"secrets_dir"`
}

// LAN is the site's local network, whose DHCP server is the ISP box.
type LAN struct {
	Subnet  netip.Prefix `yaml:"subnet"`
	Gateway netip.Addr   `yaml:"gateway"`
	DNS     []netip.Addr `yaml:"dns"` // default: the gateway
}

// Gate is the Pi itself.
type Gate struct {
	Hostname string `yaml:"hostname"` // default gate
	// Address is "dhcp" (default) or a static address with its prefix
	// length inside the LAN, e.g. 192.168.1.2/24.
	Address  string `yaml:"address"`
	Model    string `yaml:"model"` // rpi4 (default), rpi3, rpi5, pc
	Password Secret `yaml:"password" secret:"password"`
	HTTPPort int    `yaml:"http_port"` // gokrazy's web/update port, default 80
	// UpdateHost is where `gate update` reaches the gate (default: the
	// static address, else the hostname).
	UpdateHost string `yaml:"update_host"`
}

// Time is the gate's clock. The Pi has no real-time clock: it boots at
// the last time it saved on /perm (or the image's build time) and is set
// from NTP. The vpn and dyndns wait for a synchronised clock (WireGuard's
// handshakes and TSIG signatures carry the time; TLS checks it) for at
// most Wait, then go on and say so.
type Time struct {
	Servers []string `yaml:"servers"` // NTP servers (host or host:port); default the public pool
	Wait    Duration `yaml:"wait"`    // default 10m
}

// VPN is the WireGuard tunnel to the fixed-IP hubs.
type VPN struct {
	PrivateKey Secret   `yaml:"private_key" secret:"wireguard"`
	Keepalive  Duration `yaml:"keepalive"`      // default 25s
	FailAfter  Duration `yaml:"failover_after"` // no handshake this long: next hub; default 90s
	Interface  string   `yaml:"interface"`      // default wg0
	ListenPort int      `yaml:"listen_port"`    // 0: any
	Hubs       []Hub    `yaml:"hubs"`           // in failover order
}

// Hub is one VPS.
type Hub struct {
	Name     string `yaml:"name"`
	Endpoint string `yaml:"endpoint"` // host:port, a name or an IP
	// PublicAddress is the hub's public IP for the generated firewall
	// rules; default: the endpoint's host when it is an IP.
	PublicAddress netip.Addr `yaml:"public_address"`
	// PublicAddress6 is the hub's public IPv6 address, where the bastion's
	// port is forwarded too (default: the endpoint's host when it is an
	// IPv6 address). The tunnel then also carries IPv6 between
	// GateAddress6 and HubAddress6.
	PublicAddress6 netip.Addr   `yaml:"public_address6"`
	PublicKey      WGKey        `yaml:"public_key"`
	GateAddress    netip.Prefix `yaml:"gate_address"` // e.g. 10.99.0.2/24
	HubAddress     netip.Addr   `yaml:"hub_address"`  // e.g. 10.99.0.1
	MTU            int          `yaml:"mtu"`          // default 1420; 1400 when the path adds encapsulation (PPPoE, DS-Lite, a VPS inside a tunnel)
	RouteLAN       bool         `yaml:"route_lan"`
	BastionPort    int          `yaml:"bastion_port"` // public TCP port, default 2222
	ListenPort     int          `yaml:"listen_port"`  // the hub's WireGuard port, default: the endpoint's
}

// tunnel6 is the unique local prefix of the tunnel's IPv6 addresses: an
// IPv4 tunnel address A.B.C.D is fd67:6174:6500::A.B.C.D.
var tunnel6 = netip.MustParsePrefix("fd67:6174:6500::/96")

// to6 is the IPv6 tunnel address of IPv4 tunnel address a.
func to6(a netip.Addr) netip.Addr {
	b := tunnel6.Addr().As16()
	v4 := a.As4()
	copy(b[12:], v4[:])
	return netip.AddrFrom16(b)
}

// GateAddress6 is the gate's IPv6 tunnel address and prefix, derived from
// GateAddress (a /24 gives a /120), when the hub has a PublicAddress6;
// otherwise it is invalid (the tunnel carries IPv4 only).
func (h Hub) GateAddress6() netip.Prefix {
	if !h.PublicAddress6.IsValid() || !h.GateAddress.Addr().Is4() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(to6(h.GateAddress.Addr()), tunnel6.Bits()+h.GateAddress.Bits())
}

// HubAddress6 is the hub's IPv6 tunnel address, like GateAddress6.
func (h Hub) HubAddress6() netip.Addr {
	if !h.GateAddress6().IsValid() || !h.HubAddress.Is4() {
		return netip.Addr{}
	}
	return to6(h.HubAddress)
}

// DynDNS keeps DNS records on the box's public address.
type DynDNS struct {
	Interval Duration    `yaml:"interval"` // how often sources are asked, default 30s
	Sources  []IPSource  `yaml:"sources"`  // default: upnp
	Agree    string      `yaml:"agree"`    // first (default), majority, all
	Provider Provider    `yaml:"provider"`
	Records  []DNSRecord `yaml:"records"`
	Timeout  Duration    `yaml:"timeout"` // per source, default 5s
	// IPv6Suffix: the interface source publishes its prefix plus this suffix.
	IPv6Suffix netip.Addr `yaml:"ipv6_suffix"`
	// VerifyInterval: how often each published record is read back from
	// its authority (RFC 2136: the zone's primary; APIs: the record) and
	// rewritten when it drifted, default 10m.
	VerifyInterval Duration `yaml:"verify_interval"`
	// MaxInterval: a record is sent again after this long even when
	// nothing changed (dyndns2 providers delete idle hosts), default 25 days.
	MaxInterval Duration `yaml:"max_interval"`
}

// IPSource is one way to learn the public address.
type IPSource struct {
	Type      string `yaml:"type"`      // upnp, http, interface
	URL       string `yaml:"url"`       // http: an echo service answering the caller's IP
	Interface string `yaml:"interface"` // interface: its name (default eth0)
	Family    string `yaml:"family"`    // ipv4 (default for upnp/http), ipv6
}

// Provider is where records are published.
type Provider struct {
	Type string `yaml:"type"` // rfc2136, dyndns2, cloudflare, desec, gandi, hetzner
	// Preset fills dyndns2's server for known providers: ovh, noip, dynu, infomaniak.
	Preset   string `yaml:"preset"`
	Server   string `yaml:"server"` // rfc2136: host:port; dyndns2 / APIs: base URL
	Zone     string `yaml:"zone"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password" secret:"password"`
	Token    Secret `yaml:"token" secret:"external"`
	TSIGKey  string `yaml:"tsig_key"`                  // key name
	TSIG     Secret `yaml:"tsig_secret" secret:"tsig"` // base64
	TSIGAlg  string `yaml:"tsig_algorithm"`            // default hmac-sha256
}

// DNSRecord is one published record.
type DNSRecord struct {
	Name string   `yaml:"name"` // FQDN, inside the provider's zone
	Type string   `yaml:"type"` // A (default) or AAAA
	TTL  Duration `yaml:"ttl"`  // default 60s
}

// UPS describes the power source and the ordered shutdown.
type UPS struct {
	Name string `yaml:"name"` // as served over NUT, default ups
	// Source is "usb" (HID power device on the Pi) or a NUT URL
	// nut://[user@]host[:port]/upsname.
	Source         string      `yaml:"source"`
	SourceUser     string      `yaml:"source_user"`
	SourcePassword Secret      `yaml:"source_password" secret:"external"`
	Description    string      `yaml:"description"`
	Listen         []string    `yaml:"listen"` // NUT server addresses, default [":3493"]
	Thresholds     Thresholds  `yaml:"thresholds"`
	TrustLowBatt   *bool       `yaml:"trust_low_battery"` // default true
	Deadtime       Duration    `yaml:"deadtime"`          // default 15s
	PollInterval   Duration    `yaml:"poll_interval"`     // default 2s
	Delays         UPSDelays   `yaml:"delays"`
	Users          []NUTUser   `yaml:"users"`
	Groups         []ShutGroup `yaml:"shutdown_groups"` // default compute then ceph
	PowerOffGate   *bool       `yaml:"power_off_gate"`  // default true
	Return         UPSReturn   `yaml:"return"`
}

// UPSReturn is the way back after an outage whose shutdown plan ran.
type UPSReturn struct {
	Enable *bool `yaml:"enable"` // default true
	// MinCharge: power the site on once the battery is this charged
	// (percent; default 50; 0: line power is enough).
	MinCharge *int `yaml:"min_charge"`
	// WakeAfter: a host not up this long is woken (Wake-on-LAN), again
	// every WakeAfter, WakeTries times (defaults 3m, 5).
	WakeAfter Duration `yaml:"wake_after"`
	WakeTries int      `yaml:"wake_tries"`
}

// Thresholds are the site's own critical levels; zero disables one.
type Thresholds struct {
	Charge    int      `yaml:"charge"`     // percent, 0-100
	Runtime   Duration `yaml:"runtime"`    // remaining runtime below this
	OnBattery Duration `yaml:"on_battery"` // time on battery above this
}

// UPSDelays are written to the UPS before shutdown.return.
type UPSDelays struct {
	Shutdown Duration `yaml:"shutdown"` // default 20s
	Start    Duration `yaml:"start"`    // default 30s, must exceed shutdown
}

// NUTUser is an account of the NUT server.
type NUTUser struct {
	Name     string   `yaml:"name"`
	Password Secret   `yaml:"password" secret:"password"`
	Role     string   `yaml:"role"` // secondary (default), primary, admin
	Actions  []string `yaml:"actions"`
	Instcmds []string `yaml:"instcmds"`
}

// ShutGroup is one step of the ordered shutdown.
type ShutGroup struct {
	Name    string   `yaml:"name"`
	Timeout Duration `yaml:"timeout"` // default 5m
	// PreSteps run before the group's hosts go down: "k3s-drain",
	// "ceph-noout".
	PreSteps []string `yaml:"pre_steps"`
}

// Host is a LAN server.
type Host struct {
	Name      string     `yaml:"name"`
	MACs      []MAC      `yaml:"macs"`
	IP        netip.Addr `yaml:"ip"`
	Role      string     `yaml:"role"`
	Disk      string     `yaml:"disk"`       // install target, e.g. /dev/nvme0n1; default: the only disk
	BootLocal string     `yaml:"boot_local"` // how iPXE leaves to disk: auto (default), sanboot, exit
	Shutdown  HostShut   `yaml:"shutdown"`
}

// HostShut says how a host is shut down.
type HostShut struct {
	Group   string `yaml:"group"`    // a ups.shutdown_groups name, default: the role's name
	Method  string `yaml:"method"`   // nut (default) or ssh
	NUTUser string `yaml:"nut_user"` // default: the host's name
	SSHUser string `yaml:"ssh_user"` // default root
	Command string `yaml:"command"`  // default "poweroff"
	SSHKey  Secret `yaml:"ssh_key" secret:"sshkey"`
	// Wake: how the return plan powers the host on when it does not come
	// up by itself: wol (default, magic packets to its macs) or none.
	Wake string `yaml:"wake"`
	// HostKey pins the host's SSH host key (its ssh_host_ed25519_key.pub
	// line); without it the first key seen is pinned on /perm.
	HostKey PublicKey `yaml:"host_key"`
}

// Role is how hosts of a kind are installed and configured.
type Role struct {
	Image     *Image    `yaml:"image"`
	Installer *Kernel   `yaml:"installer"`
	CloudInit CloudInit `yaml:"cloud_init"`
	// K3s: server or agent (compute roles).
	K3s string `yaml:"k3s"`
}

// Image is a golden disk image.
type Image struct {
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
	Format string `yaml:"format"` // raw (default) or zstd
}

// Kernel is an installer kernel and initrd.
type Kernel struct {
	Kernel string `yaml:"kernel"`
	Initrd string `yaml:"initrd"`
	Args   string `yaml:"args"`
}

// CloudInit holds Go templates for the NoCloud files.
type CloudInit struct {
	UserData      string `yaml:"user_data"`
	VendorData    string `yaml:"vendor_data"`
	NetworkConfig string `yaml:"network_config"`
}

// Bastion is the SSH jump host.
type Bastion struct {
	Port        int           `yaml:"port"` // on the tunnel address, default 22
	ListenLAN   bool          `yaml:"listen_lan"`
	HostKey     Secret        `yaml:"host_key" secret:"sshkey"`
	IdleTimeout Duration      `yaml:"idle_timeout"` // default 15m
	Users       []BastionUser `yaml:"users"`
	// A source whose authentication fails BanAfter times (default 5) is
	// refused for BanFor (default 10m).
	BanAfter int      `yaml:"ban_after"`
	BanFor   Duration `yaml:"ban_for"`
}

// BastionUser is an admin allowed through.
type BastionUser struct {
	Name string      `yaml:"name"`
	Keys []PublicKey `yaml:"keys"`
	// Allow lists "host:port" targets; host is a host name from hosts, an
	// IP, or "*" for every host of the site; port may be "*".
	Allow []string `yaml:"allow"`
}

// Tailnet is the gate's membership of a tailnet (Tailscale, or a
// self-hosted Headscale), beside the WireGuard hubs: cmd/tailnet runs a
// tsnet node that offers the listed services to the tailnet's members.
type Tailnet struct {
	// ControlURL is the coordination server: Tailscale's (default) or a
	// Headscale URL.
	ControlURL string `yaml:"control_url"`
	// AuthKey logs the node in the first time (issued by the control
	// server; the node key then lives in the daemon's state on /perm).
	AuthKey  Secret   `yaml:"auth_key" secret:"external"` // default file:tailnet-authkey
	Hostname string   `yaml:"hostname"`                   // default: gate.hostname
	Tags     []string `yaml:"tags"`                       // e.g. tag:gate
	// Services are what the tailnet reaches: bastion, nut (read-only),
	// status (statusd's page), metrics. Default [bastion].
	Services []string `yaml:"services"`
	// AdvertiseLAN offers lan.subnet as a subnet route (the control
	// server must approve it).
	AdvertiseLAN bool `yaml:"advertise_lan"`
}

// Tailscale's own coordination server, the default tailnet.control_url.
const TailscaleControlURL = "https://controlplane.tailscale.com"

// Offers reports whether the tailnet offers service s.
func (t *Tailnet) Offers(s string) bool {
	if t == nil {
		return false
	}
	for _, x := range t.Services {
		if x == s {
			return true
		}
	}
	return false
}

// Headscale reports whether the control server is not Tailscale's.
func (t *Tailnet) Headscale() bool {
	return t != nil && t.ControlURL != TailscaleControlURL
}

// Firewall is the gate's own input policy (internal/firewall). It is on
// whether the section is there or not.
type Firewall struct {
	// TunnelOpen opens more on the tunnel than the bastion's port:
	// metrics, gokrazy, nut, tcp/PORT or udp/PORT.
	TunnelOpen []string `yaml:"tunnel_open"`
	// Off sets no policy at all.
	Off bool `yaml:"off"`
}

// Bootstrap is PXE and cloud-init for re-imaging hosts.
type Bootstrap struct {
	DHCP      string     `yaml:"dhcp"`      // proxy (default) or full
	HTTPPort  int        `yaml:"http_port"` // default 8080
	IPXEDir   string     `yaml:"ipxe_dir"`  // at image build time, default /usr/lib/ipxe
	APIToken  Secret     `yaml:"api_token" secret:"password"`
	PoolStart netip.Addr `yaml:"pool_start"` // full mode only
	PoolEnd   netip.Addr `yaml:"pool_end"`
}
