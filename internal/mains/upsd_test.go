package mains

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gate/config"
	"gate/internal/daemon"
	"gate/internal/nut"
)

// A NUT listener that cannot be opened does not stop upsd: it watches the
// UPS (ready) and serves NUT as soon as the address is free.
func TestUPSDSurvivesListenerFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &nut.Server{UPS: "ups", Users: map[string]nut.User{"mon": {Password: "pw"}},
		Data: func() nut.Snapshot {
			return nut.Snapshot{Vars: map[string]string{"ups.status": "OL", "battery.charge": "100"}}
		}}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go src.Serve(ctx, sln)
	// The gate's NUT address, taken by someone else.
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "src"), []byte("pw"), 0o600)
	os.WriteFile(filepath.Join(dir, "mon"), []byte("monpw"), 0o600)
	site := fmt.Sprintf(`site: {name: lab}
lan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}
ups:
  source: nut://%s/ups
  source_user: mon
  source_password: file:src
  listen: [%q]
  poll_interval: 1s
  users: [{name: mon, password: file:mon}]
`, sln.Addr(), blocker.Addr())
	c, err := config.Parse("site.yaml", []byte(site), dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	d := &daemon.Daemon{Name: "upsd", Config: c, Log: slog.New(slog.NewTextHandler(logs, nil)), Registry: prometheus.NewRegistry(), StateDir: t.TempDir()}
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
	if !logs.has("NUT listener failed") {
		t.Errorf("the listener's failure is not logged:\n%s", logs)
	}
	blocker.Close()
	for i := 0; ; i++ { // retried after a pause of 1 s, then 2 s
		cl, err := nut.Dial(ctx, blocker.Addr().String())
		if err == nil {
			err = cl.Login("mon", "monpw", "ups")
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
