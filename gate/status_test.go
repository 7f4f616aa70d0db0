package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/internal/history"
	"gate/internal/status"
)

// TestStatus runs statusd's real HTTP handler on loopback and reads it
// with gate status (text and --json), with the right and a wrong password.
func TestStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	charge := 64.0
	srv := &status.Server{Password: "pw", History: history.New(status.SeriesNames, history.DefaultTiers...)}
	srv.Set(&status.Snapshot{Site: "t", Time: time.Now(), Power: &status.Power{Status: "OB", Flags: []string{"OB"}, Charge: &charge, Phase: "idle"},
		Hosts: []status.Host{{Name: "ceph-1", IP: "10.9.0.11", Power: "up", NUT: "connected"}}, Gate: status.Gate{Hostname: "gate"}})
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "pw"), []byte("pw\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "secrets", "bad"), []byte("nope\n"), 0o600)
	write := func(pw string, withStatus bool) string {
		st := ""
		if withStatus {
			st = fmt.Sprintf("status: {listen: \":%d\"}\n", port)
		}
		p := filepath.Join(dir, pw+".yaml")
		os.WriteFile(p, []byte(fmt.Sprintf("site: {name: t}\nlan: {subnet: 10.9.0.0/24, gateway: 10.9.0.1}\ngate: {password: \"file:%s\"}\n%s", pw, st)), 0o644)
		return p
	}
	code, out, errs := runGate(t, "", "status", "-c", write("pw", true), "--host", "127.0.0.1")
	if code != 0 || !strings.Contains(out, "POWER") || !strings.Contains(out, "charge 64%") || !strings.Contains(out, "ceph-1") {
		t.Fatalf("gate status: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runGate(t, "", "status", "-c", write("pw", true), "--host", "127.0.0.1", "--json")
	if code != 0 || !strings.Contains(out, `"charge_percent": 64`) {
		t.Errorf("gate status --json: %d\n%s", code, out)
	}
	code, _, errs = runGate(t, "", "status", "-c", write("bad", true), "--host", "127.0.0.1")
	if code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("wrong password: %d %s", code, errs)
	}
	code, _, errs = runGate(t, "", "status", "-c", write("pw", false))
	if code != 1 || !strings.Contains(errs, "no status section") {
		t.Errorf("no status section: %d %s", code, errs)
	}
}

func TestCheckStatusPlan(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"", "statusd     off (no status or alerts section)"},
		{"status: {}\n", "status page on :8081 for 10.9.0.0/24 (user gokrazy, gate.password); no alerts"},
		{"alerts: {webhook: {url: \"http://10.9.0.5/x\"}, email: {server: \"mail:587\", from: g@x, to: [a@x]}, limit: 2}\n",
			"no page (no status section); alerts by webhook and e-mail to a@x via mail:587 (starttls), at most 2 per source per 1h0m0s"},
	} {
		p := filepath.Join(dir, "site.yaml")
		os.WriteFile(p, []byte("site: {name: t}\nlan: {subnet: 10.9.0.0/24, gateway: 10.9.0.1}\n"+tc.yaml), 0o644)
		code, out, errs := runGate(t, "", "check", "-c", p)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %d, want %q in:\n%s%s", tc.yaml, code, tc.want, out, errs)
		}
	}
}
