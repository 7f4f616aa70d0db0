package config

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"time"
	_ "time/tzdata" // the gate has no zoneinfo: validate site.timezone the same everywhere

	"gopkg.in/yaml.v3"
)

//go:embed example.yaml
var example []byte

// Example returns the embedded example site file.
func Example() []byte { return append([]byte(nil), example...) }

// ExampleName is how the embedded example is named in messages.
const ExampleName = "config/example.yaml (embedded example)"

// Load reads, decodes, defaults and validates the site file at path.
// Secrets are looked up in site.secrets_dir relative to the file. On
// problems it returns the config (as far as it decoded) and a Problems
// error listing every fatal problem; warnings are in (*Config).Warnings.
func Load(path string) (*Config, error) { return LoadWithSecrets(path, "") }

// LoadWithSecrets is Load with the secrets directory given (on the gate:
// /perm/gate/secrets); "" means site.secrets_dir beside the file.
func LoadWithSecrets(path, secretsDir string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading site file: %w", err)
	}
	return Parse(path, data, secretsDir)
}

// Parse is Load on bytes; file names the source in problems, and
// site.secrets_dir is taken relative to its directory unless secretsDir
// is given.
func Parse(file string, data []byte, secretsDir string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{{File: file, Pos: yamlErrPos(err), Message: "not valid YAML: " + err.Error()}}
	}
	c := &Config{File: file}
	d := &decoder{pos: positions{}}
	if root.Kind == 0 {
		d.problems = append(d.problems, Problem{Pos: Pos{1, 1}, Message: "the site file is empty (start from `gate example`)"})
	} else {
		d.decode(&root, reflect.ValueOf(c).Elem(), "")
	}
	c.pos = d.pos
	c.applyDefaults()
	c.SecretsDir = secretsDir
	if c.SecretsDir == "" {
		c.SecretsDir = filepath.Join(filepath.Dir(file), c.Site.SecretsDir)
	}
	problems := append(d.problems, c.validate()...)
	for i := range problems {
		problems[i].File = file
	}
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i].Pos, problems[j].Pos
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	c.warnings = problems.Warnings()
	if errs := problems.Errors(); len(errs) > 0 {
		return c, append(errs, c.warnings...)
	}
	return c, nil
}

// Warnings returns the non-fatal problems found by Load.
func (c *Config) Warnings() Problems { return c.warnings }

// PosOf returns where a field path (e.g. "hosts[1].ip") stands in the file;
// the zero Pos when it is not in the file.
func (c *Config) PosOf(path string) Pos { return c.pos[path] }

func yamlErrPos(err error) Pos {
	var line int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); e == nil {
		return Pos{line, 1}
	}
	return Pos{1, 1}
}

func orDur(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func orStr(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func orInt(i *int, def int) {
	if *i == 0 {
		*i = def
	}
}

func orBool(b **bool, def bool) {
	if *b == nil {
		*b = &def
	}
}

// DefaultNTPServers is the public NTP pool, asked when time.servers is
// left out.
func DefaultNTPServers() []string {
	return []string{"0.pool.ntp.org", "1.pool.ntp.org", "2.pool.ntp.org", "3.pool.ntp.org"}
}

// applyDefaults fills every field left out with its documented default.
func (c *Config) applyDefaults() {
	orStr(&c.Site.Timezone, "UTC")
	orStr(&c.Site.SecretsDir, "secrets")
	if len(c.LAN.DNS) == 0 && c.LAN.Gateway.IsValid() {
		c.LAN.DNS = append(c.LAN.DNS, c.LAN.Gateway)
	}
	orStr(&c.Gate.Hostname, "gate")
	orStr(&c.Gate.Address, "dhcp")
	orStr(&c.Gate.Model, "rpi4")
	orInt(&c.Gate.HTTPPort, 80)
	if c.Gate.Password == "" {
		c.Gate.Password = "file:gokrazy-password"
	}
	if len(c.Time.Servers) == 0 {
		c.Time.Servers = DefaultNTPServers()
	}
	orDur(&c.Time.Wait, 10*time.Minute)
	if v := c.VPN; v != nil {
		orDur(&v.Keepalive, 25*time.Second)
		orDur(&v.FailAfter, 90*time.Second)
		orStr(&v.Interface, "wg0")
		if v.PrivateKey == "" {
			v.PrivateKey = "file:wireguard.key"
		}
		for i := range v.Hubs {
			h := &v.Hubs[i]
			orInt(&h.MTU, 1420)
			orInt(&h.BastionPort, 2222)
		}
	}
	if d := c.DynDNS; d != nil {
		orDur(&d.Interval, 30*time.Second)
		orDur(&d.VerifyInterval, 10*time.Minute)
		orDur(&d.MaxInterval, 25*24*time.Hour)
		orDur(&d.Timeout, 5*time.Second)
		orStr(&d.Agree, "first")
		if len(d.Sources) == 0 {
			d.Sources = []IPSource{{Type: "upnp"}}
		}
		for i := range d.Sources {
			s := &d.Sources[i]
			if s.Type == "interface" {
				orStr(&s.Interface, "eth0")
				orStr(&s.Family, "ipv6")
			}
			orStr(&s.Family, "ipv4")
		}
		orStr(&d.Provider.TSIGAlg, "hmac-sha256")
		for i := range d.Records {
			orStr(&d.Records[i].Type, "A")
			orDur(&d.Records[i].TTL, 60*time.Second)
		}
	}
	if u := c.UPS; u != nil {
		orStr(&u.Name, "ups")
		if len(u.Listen) == 0 {
			u.Listen = []string{":3493"}
		}
		orBool(&u.TrustLowBatt, true)
		orBool(&u.PowerOffGate, true)
		orDur(&u.Deadtime, 15*time.Second)
		orDur(&u.PollInterval, 2*time.Second)
		orDur(&u.Delays.Shutdown, 20*time.Second)
		orDur(&u.Delays.Start, 30*time.Second)
		for i := range u.Users {
			orStr(&u.Users[i].Role, "secondary")
		}
		if len(u.Groups) == 0 {
			u.Groups = []ShutGroup{{Name: "compute", PreSteps: []string{"k3s-drain"}}, {Name: "ceph", PreSteps: []string{"ceph-noout"}}}
		}
		for i := range u.Groups {
			orDur(&u.Groups[i].Timeout, 5*time.Minute)
		}
		orBool(&u.Return.Enable, true)
		if u.Return.MinCharge == nil {
			u.Return.MinCharge = new(50)
		}
		orDur(&u.Return.WakeAfter, 3*time.Minute)
		orInt(&u.Return.WakeTries, 5)
	}
	for i := range c.Hosts {
		h := &c.Hosts[i]
		orStr(&h.BootLocal, "auto")
		orStr(&h.Shutdown.Group, h.Role)
		orStr(&h.Shutdown.Method, "nut")
		orStr(&h.Shutdown.NUTUser, h.Name)
		orStr(&h.Shutdown.Wake, "wol")
		orStr(&h.Shutdown.SSHUser, "root")
		orStr(&h.Shutdown.Command, "poweroff")
		// The key also runs the pre-steps (and their undo) on a group's
		// hosts, whatever their shutdown method.
		if (h.Shutdown.Method == "ssh" || len(c.PreSteps(h.Shutdown.Group)) > 0) && h.Shutdown.SSHKey == "" {
			h.Shutdown.SSHKey = "file:shutdown_ed25519_key"
		}
	}
	for _, r := range c.Roles {
		if r != nil && r.Image != nil {
			orStr(&r.Image.Format, "raw")
		}
	}
	if b := c.Bastion; b != nil {
		orInt(&b.Port, 22)
		orDur(&b.IdleTimeout, 15*time.Minute)
		orInt(&b.BanAfter, 5)
		orDur(&b.BanFor, 10*time.Minute)
		if b.HostKey == "" {
			b.HostKey = "file:ssh_host_ed25519_key"
		}
	}
	c.statusDefaults()
	if t := c.Tailnet; t != nil {
		orStr(&t.ControlURL, TailscaleControlURL)
		orStr(&t.Hostname, c.Gate.Hostname)
		if t.AuthKey == "" {
			t.AuthKey = "file:tailnet-authkey"
		}
		if t.Services == nil {
			t.Services = []string{"bastion"}
		}
	}
	if b := c.Bootstrap; b != nil {
		orStr(&b.DHCP, "proxy")
		orInt(&b.HTTPPort, 8080)
		orStr(&b.IPXEDir, "/usr/lib/ipxe")
		if b.APIToken == "" {
			b.APIToken = "file:bootstrap-token"
		}
	}
}

// PreSteps are the pre-steps of shutdown group g (none without a UPS).
func (c *Config) PreSteps(g string) []string {
	if c.UPS == nil {
		return nil
	}
	for _, sg := range c.UPS.Groups {
		if sg.Name == g {
			return sg.PreSteps
		}
	}
	return nil
}
