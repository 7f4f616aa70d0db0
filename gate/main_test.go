package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runGate(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	wd, _ := os.Getwd()
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			t.Fatal(err)
		}
		defer os.Chdir(wd)
	}
	code := run(&env{stdout: &out, stderr: &errb, stdin: strings.NewReader("")}, args)
	return code, out.String(), errb.String()
}

func TestCheckExample(t *testing.T) {
	code, out, errs := runGate(t, "", "check", "-c", "../config/example.yaml")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"ceph-1", "compute-1", "192.168.1.21", "daemons:", "upsd", "vps-1", "OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckEmbeddedExampleWhenNoSiteFile(t *testing.T) {
	code, out, errs := runGate(t, t.TempDir(), "check")
	if code != exitOK || !strings.Contains(errs, "embedded example") || !strings.Contains(out, "OK") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := `site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
gate: {address: 10.9.9.9/24, colour: blue}
hosts:
  - {name: a, macs: ["52:54:00:00:00:01"], ip: 10.1.0.10, role: nosuch}
  - {name: a, macs: ["52:54:00:00:00:01"], ip: 10.1.0.10, role: nosuch}
`
	p := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runGate(t, "", "check", "-c", p)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d\n%s", code, exitInvalid, out)
	}
	for _, want := range []string{
		p + ":3:17: gate.address: 10.9.9.9 is outside the LAN",
		p + ":3:30: gate.colour: unknown key",
		p + ":5:65: hosts[0].role: unknown role",
		p + ":6:12: hosts[1].name: host name \"a\" used twice",
		p + ":6:22: hosts[1].macs[0]: MAC 52:54:00:00:00:01 used twice",
		p + ":6:48: hosts[1].ip: address 10.1.0.10 used twice",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestSecretsInitThenCheckIsClean(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.yaml"), exampleBytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runGate(t, dir, "secrets", "init")
	if code != exitOK || !strings.Contains(out, "created") {
		t.Fatalf("secrets init: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runGate(t, dir, "check")
	if code != exitOK || strings.Contains(out, "warning") {
		t.Fatalf("check after init: exit %d\n%s", code, out)
	}
	// Nothing is overwritten by a second run.
	before, _ := os.ReadFile(filepath.Join(dir, "secrets", "wireguard.key"))
	runGate(t, dir, "secrets", "init")
	after, _ := os.ReadFile(filepath.Join(dir, "secrets", "wireguard.key"))
	if !bytes.Equal(before, after) {
		t.Error("second secrets init changed wireguard.key")
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, exitOK},
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"check", "--nope"}, exitUsage},
		{[]string{"check", "--help"}, exitOK},
		{[]string{"check", "-c", "/nonexistent/site.yaml"}, exitFailed},
		{[]string{"version"}, exitOK},
		{[]string{"secrets"}, exitUsage},
	} {
		if code, out, errs := runGate(t, "", tc.args...); code != tc.code {
			t.Errorf("gate %v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errs)
		}
	}
}

func TestFlashAsksThenWrites(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "gate.img")
	os.WriteFile(img, bytes.Repeat([]byte("x"), 1<<20), 0o644)
	card := filepath.Join(dir, "card.img")
	os.WriteFile(card, []byte("old"), 0o644)

	var out, errb bytes.Buffer
	code := run(&env{stdout: &out, stderr: &errb, stdin: strings.NewReader("no\n")}, []string{"flash", "--image", img, card})
	if code != exitFailed || !strings.Contains(errb.String(), "not confirmed") {
		t.Fatalf("declined: exit %d\n%s", code, errb.String())
	}
	if b, _ := os.ReadFile(card); string(b) != "old" {
		t.Fatal("written although declined")
	}
	out.Reset()
	errb.Reset()
	code = run(&env{stdout: &out, stderr: &errb, stdin: strings.NewReader("yes\n")}, []string{"flash", "--image", img, card})
	if code != exitOK || !strings.Contains(out.String(), "verified") {
		t.Fatalf("confirmed: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code, _, _ := runGate(t, "", "flash", "--yes", "--image", img, "/dev/null"); code != exitFailed {
		t.Errorf("flashing /dev/null: exit %d", code)
	}
}
