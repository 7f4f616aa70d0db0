package site

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gate/integration/netlab"
)

// Addresses of the simulated internet's services.
var (
	DNSAddr  = netip.MustParseAddr("203.0.113.53")
	EchoAddr = netip.MustParseAddr("203.0.113.80")
)

// EchoURL is the "what is my IP" service StartEcho runs.
var EchoURL = "http://" + EchoAddr.String() + ":8053/ip"

// BIND is Debian's named serving a zone that accepts RFC 2136 updates of
// one name signed with a TSIG key.
type BIND struct {
	Proc   *netlab.Proc
	Host   *netlab.Host
	Secret string // the TSIG key, base64
}

// NewTSIGSecret returns a random hmac-sha256 key, base64.
func NewTSIGSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// StartBIND runs named on the internet at DNSAddr, authoritative for zone,
// granting key keyName (secret, base64) updates of name's A and AAAA.
func (s *Site) StartBIND(zone, name, keyName, secret string) *BIND {
	s.t.Helper()
	netlab.Require(s.t, "/usr/sbin/named")
	h := s.Hub("dns", DNSAddr)
	dir := filepath.Join(s.Dir, "named")
	os.MkdirAll(dir, 0o755)
	zone, name, keyName = strings.TrimSuffix(zone, "."), strings.TrimSuffix(name, "."), strings.TrimSuffix(keyName, ".")
	os.WriteFile(filepath.Join(dir, zone+".zone"), []byte(fmt.Sprintf("$TTL 60\n@ IN SOA ns.%[1]s. hostmaster.%[1]s. 1 60 60 600 60\n@ IN NS ns.%[1]s.\nns IN A %[2]s\n", zone, DNSAddr)), 0o644)
	conf := filepath.Join(dir, "named.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`options {
	directory "%[1]s";
	listen-on { %[2]s; };
	listen-on-v6 { none; };
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	recursion no;
	dnssec-validation no;
};
key "%[3]s." { algorithm hmac-sha256; secret "%[4]s"; };
zone "%[5]s" {
	type primary;
	file "%[1]s/%[5]s.zone";
	update-policy { grant %[3]s. name %[6]s. A AAAA; };
};
`, dir, DNSAddr, keyName, secret, zone, name)), 0o644)
	p := h.Start("named", nil, "/usr/sbin/named", "-g", "-u", "root", "-c", conf)
	if err := p.WaitFor("running", 20*time.Second); err != nil {
		s.t.Fatal(err, p.Output())
	}
	return &BIND{Proc: p, Host: h, Secret: secret}
}

// Lookup asks the server what name holds (type A), with Debian's dig.
func (b *BIND) Lookup(name string) string { return b.LookupType(name, "A") }

// LookupType asks the server for name's records of type typ.
func (b *BIND) LookupType(name, typ string) string {
	out, _ := b.Host.Output("dig", "+short", "@"+DNSAddr.String(), name, typ)
	return strings.TrimSpace(out)
}

// StartEcho runs a "what is my IP" service on the internet at EchoAddr: it
// sees the box's WAN address through the NAT.
func (s *Site) StartEcho() {
	s.t.Helper()
	h := s.Hub("echo", EchoAddr)
	p := h.Start("echoip", nil, netlab.Build(s.t, "gate/integration/site/echoip"), "-listen", EchoAddr.String()+":8053")
	if err := p.WaitFor("listening", 10*time.Second); err != nil {
		s.t.Fatal(err)
	}
}
