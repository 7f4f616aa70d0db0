package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestWaitFirewall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		after   int   // calls before the policy is in place (-1: never)
		err     error // what applied returns until then
		want    bool
		wantLog string
		minWait time.Duration
	}{
		{"in place at once", 0, nil, true, "", 0},
		{"in place after a few looks", 3, nil, true, "the firewall's policy is in place", 30 * time.Millisecond},
		{"never", -1, nil, false, "not in place: starting without it", 200 * time.Millisecond},
		{"nftables failing", -1, errors.New("nftables: no such file"), false, "nftables: no such file", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			n := 0
			applied := func() (bool, error) {
				n++
				if tc.after >= 0 && n > tc.after {
					return true, nil
				}
				return false, tc.err
			}
			start := time.Now()
			got := waitFirewall(context.Background(), log, applied, 200*time.Millisecond, 10*time.Millisecond)
			waited := time.Since(start)
			if got != tc.want {
				t.Errorf("waitFirewall = %v, want %v", got, tc.want)
			}
			if waited < tc.minWait {
				t.Errorf("returned after %s, before %s", waited, tc.minWait)
			}
			// Bounded without a timing: each look but the last is
			// followed by a wait of at least the interval, so 200ms
			// allow 21 looks at most.
			if n > 21 {
				t.Errorf("%d looks: the wait is bounded by 200ms at 10ms intervals", n)
			}
			if tc.wantLog == "" && buf.Len() > 0 || !strings.Contains(buf.String(), tc.wantLog) {
				t.Errorf("log %q, want %q", buf.String(), tc.wantLog)
			}
		})
	}
	// SIGTERM while waiting: it returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if waitFirewall(ctx, slog.New(slog.DiscardHandler), func() (bool, error) { return false, nil }, time.Hour, time.Millisecond) {
		t.Error("waitFirewall with a cancelled context = true")
	}
}
