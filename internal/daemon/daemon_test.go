package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const site = "site: {name: lab}\nlan: {subnet: 10.1.0.0/24, gateway: 10.1.0.1}\n"

func writeSite(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(p, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunConventions(t *testing.T) {
	cfg := writeSite(t)
	for _, tc := range []struct {
		name     string
		cfg      string
		run      RunFunc
		code     int
		wantLogs []string
	}{
		{"disabled", cfg, func(ctx context.Context, d *Daemon) error { return ErrDisabled }, ExitDisabled, []string{"not started"}},
		{"done", cfg, func(ctx context.Context, d *Daemon) error { d.Ready(); return ErrDone }, ExitDisabled, []string{"msg=ready daemon=test", "exiting", "nothing left to do"}},
		{"failure", cfg, func(ctx context.Context, d *Daemon) error { return errors.New("boom") }, 1, []string{"stopped", "boom"}},
		{"bad config", "/nonexistent/site.yaml", nil, 1, []string{"site file rejected"}},
		{"ready and metrics", cfg, func(ctx context.Context, d *Daemon) error {
			d.Ready("port", 1)
			resp, err := http.Get("http://" + d.MetricsAddr + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "go_goroutines") {
				return errors.New("no Go metrics on /metrics")
			}
			return nil
		}, 0, []string{"msg=ready daemon=test port=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			code := run1(log, "test", tc.cfg, t.TempDir(), filepath.Join(t.TempDir(), "state"), "127.0.0.1:0", 0, tc.run)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, buf.String())
			}
			for _, w := range tc.wantLogs {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

// site.timezone is the daemons' local time: their log lines carry it.
func TestTimezone(t *testing.T) {
	old := time.Local
	t.Cleanup(func() { time.Local = old })
	p := filepath.Join(t.TempDir(), "site.yaml")
	os.WriteFile(p, []byte(strings.Replace(site, "{name: lab}", "{name: lab, timezone: Asia/Kathmandu}", 1)), 0o644)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	run1(log, "test", p, t.TempDir(), filepath.Join(t.TempDir(), "state"), "", 0, func(ctx context.Context, d *Daemon) error {
		d.Ready()
		return nil
	})
	if !strings.Contains(buf.String(), "+05:45 level=INFO msg=ready") {
		t.Errorf("log lines not in the site's time zone:\n%s", buf.String())
	}
}
