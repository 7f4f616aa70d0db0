package mains

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/config"
	"gate/internal/daemon"
	"gate/internal/metrics"
	"gate/internal/nut"
)

// runLabUPSD runs upsd (runUPSD, as the gate does) with a loopback NUT
// source, serving NUT on listen, with the site file's ups.users lines.
func runLabUPSD(t *testing.T, ctx context.Context, listen, users string) (*syncLog, chan error) {
	t.Helper()
	var ran []string
	var mu sync.Mutex
	src := &nut.Server{UPS: "ups", Users: map[string]nut.User{"mon": {Password: "pw", Admin: true}},
		Data: func() nut.Snapshot {
			return nut.Snapshot{Vars: map[string]string{"ups.status": "OL", "battery.charge": "100"}}
		},
		Commands: map[string]string{"load.off": "Turn off the load", "beeper.disable": "Disable the beeper"},
		Exec:     func(cmd, _ string) error { mu.Lock(); ran = append(ran, cmd); mu.Unlock(); return nil }}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go src.Serve(ctx, sln)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "src"), []byte("pw"), 0o600)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("userpw"), 0o600)
	site := fmt.Sprintf(`site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
ups:
  source: nut://%s/ups
  source_user: mon
  source_password: file:src
  listen: [%q]
  poll_interval: 1s
  users:
%s`, sln.Addr(), listen, users)
	c, err := config.Parse("site.yaml", []byte(site), dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	d := &daemon.Daemon{Name: "upsd", Config: c, Log: slog.New(slog.NewTextHandler(logs, nil)), Registry: metrics.NewRegistry(), StateDir: t.TempDir()}
	done := make(chan error, 1)
	go func() { done <- runUPSD(ctx, d, "") }()
	for i := 0; !logs.has("msg=ready"); i++ {
		select {
		case err := <-done:
			t.Fatalf("upsd stopped: %v\n%s", err, logs)
		case <-time.After(50 * time.Millisecond):
		}
		if i > 400 {
			t.Fatalf("upsd not ready:\n%s", logs)
		}
	}
	return logs, done
}

// A NUT listener that cannot be opened does not stop upsd: it watches the
// UPS (ready) and serves NUT as soon as the address is free.
func TestUPSDSurvivesListenerFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The gate's NUT address, taken by someone else.
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs, done := runLabUPSD(t, ctx, blocker.Addr().String(), "    - {name: mon, password: file:pw}\n")
	if !logs.has("NUT listener failed") {
		t.Errorf("the listener's failure is not logged:\n%s", logs)
	}
	blocker.Close()
	for i := 0; ; i++ { // retried after a pause of 1 s, then 2 s
		cl, err := nut.Dial(ctx, blocker.Addr().String())
		if err == nil {
			err = cl.Login("mon", "userpw", "ups")
			cl.Close()
		}
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatalf("NUT never served after the address was freed: %v\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("upsd stopped: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// ups.users[].actions and instcmds: what the site file grants, and only
// that, with NUT's own ERR word for the rest.
func TestUPSDUserRights(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	runLabUPSD(t, ctx, addr, `    - {name: admin, password: file:pw, role: admin}
    - {name: beeper, password: file:pw, role: admin, instcmds: [beeper.disable], actions: [FSD]}
    - {name: setter, password: file:pw, actions: [SET], instcmds: [ALL]}
`)
	for _, tc := range []struct {
		user, cmd, want string
	}{
		{"admin", "load.off", ""},
		{"beeper", "load.off", "ACCESS-DENIED"},
		{"beeper", "beeper.disable", ""},
		{"setter", "load.off", ""},
	} {
		var cl *nut.Client
		for i := 0; ; i++ {
			if cl, err = nut.Dial(ctx, addr); err == nil {
				break
			}
			if i > 100 {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := cl.Login(tc.user, "userpw", ""); err != nil {
			t.Fatal(err)
		}
		err := cl.InstCmd("ups", tc.cmd, "")
		cl.Close()
		var ne *nut.Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: INSTCMD %s: %v", tc.user, tc.cmd, err)
		case tc.want != "" && !(errors.As(err, &ne) && ne.Word == tc.want):
			t.Errorf("%s: INSTCMD %s: %v, want ERR %s", tc.user, tc.cmd, err, tc.want)
		}
	}
}

// syncLog is a log sink the test reads while the daemon writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncLog) has(sub string) bool { return strings.Contains(s.String(), sub) }

// ups.power_off_gate decides the plan's last step.
func TestPowerOffGate(t *testing.T) {
	for _, tc := range []struct {
		yaml   string
		marked bool
	}{
		{"", true},
		{"  power_off_gate: true\n", true},
		{"  power_off_gate: false\n", false},
	} {
		c, err := config.Parse("site.yaml", []byte("site: {name: lab}\nlan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}\nups:\n  source: usb\n"+tc.yaml), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncLog{}
		d := &daemon.Daemon{Config: c, Log: slog.New(slog.NewTextHandler(logs, nil))}
		marker := filepath.Join(t.TempDir(), "off")
		if err := gateOff(d, marker)(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(marker); (err == nil) != tc.marked {
			t.Errorf("%q: powered off %v, want %v", tc.yaml, err == nil, tc.marked)
		}
		if !tc.marked && !logs.has("the gate stays up") {
			t.Errorf("%q: not logged:\n%s", tc.yaml, logs)
		}
	}
}
