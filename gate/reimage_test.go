package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gate/config"
	"gate/internal/bootstrap"
	"gate/internal/powerstate"
)

// TestReimageAndHosts drives bootstrapd's real HTTP server on loopback
// with gate reimage, gate reimage --cancel and gate hosts.
func TestReimageAndHosts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "token"), []byte("tok\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "secrets", "pw"), []byte("pw\n"), 0o600)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, []byte(fmt.Sprintf(`
site: {name: t}
lan: {subnet: 10.9.0.0/24, gateway: 10.9.0.1}
gate: {address: 10.9.0.2/24, password: "file:pw"}
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: 10.9.0.11, role: ceph}
roles:
  ceph:
    image: {url: "http://10.9.0.2:8080/images/g.raw", sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
bootstrap: {api_token: "file:token", http_port: %d}
`, port)), 0o644)
	c, err := config.Load(site)
	if err != nil {
		t.Fatal(err)
	}
	st, err := bootstrap.OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &bootstrap.Server{Config: c, Store: st, Base: "http://10.9.0.2:8080", GateIP: netip.MustParseAddr("10.9.0.2"), Assets: t.TempDir(), Token: []byte("tok"),
		PowerFile: filepath.Join(dir, "power.json")} // absent until upsd writes it
	h, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	defer hs.Close()

	gate := func(args ...string) (int, string) {
		t.Helper()
		var out, errb strings.Builder
		code := run(&env{stdout: &out, stderr: &errb, stdin: strings.NewReader("")}, args)
		return code, out.String() + errb.String()
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"hosts", "-c", site, "--host", "127.0.0.1"}, 0, "boots from disk"},
		{[]string{"reimage", "-c", site, "--host", "127.0.0.1", "nope"}, 1, `no host "nope"`},
		{[]string{"reimage", "-c", site, "--host", "127.0.0.1"}, 2, "exactly one host"},
		{[]string{"reimage", "-c", site, "--host", "127.0.0.1", "ceph-1"}, 0, "flagged for re-imaging"},
		{[]string{"hosts", "-c", site, "--host", "127.0.0.1"}, 0, "flagged"},
		{[]string{"reimage", "-c", site, "--host", "127.0.0.1", "--cancel", "ceph-1"}, 0, "cancelled"},
		{[]string{"hosts", "-c", site, "--host", "127.0.0.1"}, 0, "cancelled"},
	} {
		code, out := gate(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("gate %v: exit %d %q, want %d containing %q", tc.args, code, out, tc.code, tc.want)
		}
	}
	// upsd's power state: the host's power and the return plan's progress.
	pw := &powerstate.Writer{Path: srv.PowerFile}
	pw.Host("ceph-1", "missing")
	pw.Return("group compute")
	if code, out := gate("hosts", "-c", site, "--host", "127.0.0.1"); code != 0 || !strings.Contains(out, "missing (") || !strings.Contains(out, "return plan after the outage: group compute") {
		t.Errorf("gate hosts with upsd's power state: exit %d %q", code, out)
	}
	// A wrong token is refused with bootstrapd's reason.
	os.WriteFile(filepath.Join(dir, "secrets", "token"), []byte("wrong\n"), 0o600)
	if code, out := gate("hosts", "-c", site, "--host", "127.0.0.1"); code != 1 || !strings.Contains(out, "API token") {
		t.Errorf("wrong token: exit %d %q", code, out)
	}
}
