package dyndns

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"time"

	"gate/config"
	"gate/internal/publicip"
)

// UserAgent identifies the gate to providers, as dyndns2 requires: the
// project, the program and its build.
var UserAgent = "gate-dyndns/" + BuildVersion() + " (gate: firmware of a self-hosted site's entry point)"

// stampedVersion is the source revision gate image links in (-X), since
// the image's builds carry no VCS stamp.
var stampedVersion string

// BuildVersion is the build's version: the revision gate image linked
// in, else the module's version when it has one, else the VCS revision it
// was built from (12 digits, "-dirty" when modified), else "devel".
func BuildVersion() string {
	if stampedVersion != "" {
		return stampedVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return buildVersion(bi)
}

func buildVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// presetURL is a dyndns2 preset's URL with the site file's server: the
// server's scheme and host replace the preset's, its path replaces the
// preset's when it has one, and the preset's query (OVH's system=dyndns)
// is kept under the server's own parameters.
func presetURL(preset, server string) (string, error) {
	base := Presets[preset]
	if server == "" || base == "" {
		if server == "" {
			return base, nil
		}
		return server, nil
	}
	p, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("preset %s: %v", preset, err)
	}
	s, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("dyndns.provider.server %q: %v", server, err)
	}
	p.Scheme, p.Host, p.User = s.Scheme, s.Host, s.User
	if s.Path != "" && s.Path != "/" {
		p.Path = s.Path
	}
	q := p.Query()
	for k, v := range s.Query() {
		q[k] = v
	}
	p.RawQuery = q.Encode()
	return p.String(), nil
}

// FromConfig builds the provider, records and sources of a site. It also
// returns the hash that identifies this configuration, credentials
// included (hashed, never stored), so that fixing a refused password or
// record lifts the block.
func FromConfig(c *config.Config) (Provider, []Record, []publicip.Source, string, error) {
	d := c.DynDNS
	p := d.Provider
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%s|%s|%s|%s\n", p.Type, p.Preset, p.Server, p.Zone, p.Username, p.TSIGKey, p.TSIGAlg)
	secret := func(s config.Secret) (string, error) {
		if !s.IsSet() {
			return "", nil
		}
		b, err := c.ReadSecret(s)
		if err != nil {
			return "", err
		}
		h.Write(b)
		return string(b), nil
	}
	var prov Provider
	switch p.Type {
	case "rfc2136":
		sec, err := secret(p.TSIG)
		if err != nil {
			return nil, nil, nil, "", err
		}
		prov = &RFC2136{Server: p.Server, Zone: p.Zone, KeyName: p.TSIGKey, Secret: sec, Alg: p.TSIGAlg}
	case "dyndns2":
		pw, err := secret(p.Password)
		if err != nil {
			return nil, nil, nil, "", err
		}
		u, err := presetURL(p.Preset, p.Server)
		if err != nil {
			return nil, nil, nil, "", err
		}
		prov = &DynDNS2{URL: u, User: p.Username, Password: pw, UserAgent: UserAgent, Client: &http.Client{Timeout: 15 * time.Second}}
	case "cloudflare", "desec", "gandi", "hetzner":
		tok, err := secret(p.Token)
		if err != nil {
			return nil, nil, nil, "", err
		}
		hc := &http.Client{Timeout: 15 * time.Second}
		switch p.Type {
		case "cloudflare":
			prov = &Cloudflare{BaseURL: p.Server, Zone: p.Zone, Token: tok, Client: hc}
		case "desec":
			prov = &DeSEC{BaseURL: p.Server, Domain: p.Zone, Token: tok, Client: hc}
		case "gandi":
			prov = &Gandi{BaseURL: p.Server, Zone: p.Zone, Token: tok, Client: hc}
		case "hetzner":
			prov = &Hetzner{BaseURL: p.Server, Zone: p.Zone, Token: tok, Client: hc}
		}
	default:
		return nil, nil, nil, "", fmt.Errorf("unknown dyndns provider %q (rfc2136, dyndns2, cloudflare, desec, gandi or hetzner)", p.Type)
	}
	var recs []Record
	for _, r := range d.Records {
		fmt.Fprintf(h, "%s %s %s\n", r.Name, r.Type, r.TTL.D())
		recs = append(recs, Record{Name: r.Name, Type: r.Type, TTL: r.TTL.D()})
	}
	var srcs []publicip.Source
	for _, s := range d.Sources {
		switch s.Type {
		case "upnp":
			srcs = append(srcs, &publicip.UPnP{})
		case "http":
			srcs = append(srcs, publicip.HTTP{URL: s.URL, Family: s.Family, UserAgent: UserAgent})
		case "interface":
			srcs = append(srcs, publicip.Interface{Iface: s.Interface, Suffix: d.IPv6Suffix})
		}
	}
	return prov, recs, srcs, hex.EncodeToString(h.Sum(nil)), nil
}
