package dyndns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// dynAddr is the recording dyndns2 provider on the simulated internet.
var dynAddr = netip.MustParseAddr("203.0.113.81")

// TestIntegrationDynDNS2Recorded: cmd/dyndns as built, with `preset: ovh`
// and a server of its own, against a recording dyndns2 provider over
// HTTPS on the internet: the request keeps the preset's path and query
// (system=dyndns), carries the credentials, and its User-Agent names
// gate-dyndns and the binary's own build (its VCS revision).
func TestIntegrationDynDNS2Recorded(t *testing.T) {
	l := newLab(t)
	l.s.StartEcho()
	ca, cert := testCerts(t, dynAddr)
	caFile := filepath.Join(l.dir, "ca.pem")
	os.WriteFile(caFile, ca, 0o644)

	var mu sync.Mutex
	var reqs []*http.Request
	h := l.s.Hub("dyn", dynAddr)
	var ln net.Listener
	var err error
	enterNS(t, h).do(func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(dynAddr, 443).String()) })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Clone(r.Context()))
		mu.Unlock()
		fmt.Fprintf(w, "good %s\n", r.URL.Query().Get("myip"))
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	dir := filepath.Join(l.dir, "dyndns2")
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "dyndns-password"), []byte("s3cret\n"), 0o600)
	conf := filepath.Join(dir, "site.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
dyndns:
  sources: [{type: http, url: %q}]
  provider: {type: dyndns2, preset: ovh, server: "https://%s", username: home-user, password: "file:dyndns-password"}
  records: [{name: home.example.org}]
`, site.EchoURL, dynAddr)), 0o644)
	bin := netlab.Build(t, "gate/cmd/dyndns")
	p := l.gate.Start("dyndns2", []string{"SSL_CERT_FILE=" + caFile}, bin, "-config", conf, "-secrets", filepath.Join(dir, "secrets"),
		"-state", filepath.Join(dir, "state"), "-metrics", "")
	if err := p.WaitFor("record updated", 30*time.Second); err != nil {
		t.Fatal(err, p.Output())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	q := r.URL.Query()
	if r.URL.Path != "/nic/update" || q.Get("system") != "dyndns" || q.Get("hostname") != "home.example.org" || q.Get("myip") != site.BoxWAN.String() {
		t.Errorf("request %s", r.URL)
	}
	if u, pw, ok := r.BasicAuth(); !ok || u != "home-user" || pw != "s3cret" {
		t.Errorf("credentials %q %q %v", u, pw, ok)
	}
	want := buildOf(t, bin)
	ua := r.Header.Get("User-Agent")
	t.Logf("User-Agent: %s (the binary's build: %s)", ua, want)
	if !strings.HasPrefix(ua, "gate-dyndns/"+want+" ") || strings.Contains(ua, "gokrazy") {
		t.Errorf("User-Agent %q does not name gate-dyndns and the build %s", ua, want)
	}
}

// buildOf is the build go stamped into the binary, as `go version -m`
// reads it: the module's version, else the VCS revision (12 digits,
// -dirty when modified), else "devel" (a build with -buildvcs=false, or
// from a git worktree, has no revision).
func buildOf(t *testing.T, bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	var mod, rev string
	dirty := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			mod = f[2]
		case len(f) >= 2 && f[0] == "build":
			if v, ok := strings.CutPrefix(f[1], "vcs.revision="); ok {
				rev = v
			}
			dirty = dirty || f[1] == "vcs.modified=true"
		}
	}
	switch {
	case mod != "" && mod != "(devel)":
		return mod
	case rev == "":
		return "devel"
	case dirty:
		return rev[:12] + "-dirty"
	}
	return rev[:12]
}

// testCerts makes a CA (PEM) and a certificate it signed for addr.
func testCerts(t *testing.T, addr netip.Addr) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: addr.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{addr.AsSlice()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
