package imager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReport: the outcome is sent again after a transient failure (5xx,
// 408, 429, a lost answer), never after bootstrapd refused it (4xx: it
// cannot be taken), and not after the context ends (bootstrapd's first
// answer ends it; the pause before a retry is an hour, so a report that
// sleeps through the end hangs the test instead of passing).
func TestReport(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	tests := []struct {
		name     string
		answers  []int // status per request; the last one repeats
		body     string
		retryFor time.Duration
		cancel   bool  // the first answer ends the context
		wantErr  error // nil, ErrRefused, or errAny
		wantMsg  string
		calls    int
	}{
		{name: "accepted", answers: []int{204}, calls: 1},
		{name: "server error, then accepted", answers: []int{500, 502, 204}, retryFor: time.Minute, calls: 3},
		{name: "busy, then accepted", answers: []int{429, 408, 204}, retryFor: time.Minute, calls: 3},
		{name: "conflict is final", answers: []int{409, 204}, body: "ceph-1 is not being re-imaged (phase \"\")\n", retryFor: time.Minute,
			wantErr: ErrRefused, wantMsg: `409 Conflict: ceph-1 is not being re-imaged (phase "")`, calls: 1},
		{name: "forbidden is final", answers: []int{403}, body: "MAC is ceph-1's\x1b[31m\n", retryFor: time.Minute, wantErr: ErrRefused, wantMsg: "MAC is ceph-1's [31m", calls: 1},
		{name: "gives up after retryFor", answers: []int{503}, retryFor: 0, wantErr: errAny, calls: 1},
		{name: "stops when the context ends", answers: []int{500}, retryFor: time.Hour, cancel: true, wantErr: errAny, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				code := tt.answers[min(calls, len(tt.answers)-1)]
				calls++
				mu.Unlock()
				if tt.cancel {
					cancel()
				}
				w.WriteHeader(code)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := &Client{Base: srv.URL, MAC: mac}
			wait := time.Millisecond
			if tt.cancel {
				wait = time.Hour
			}
			err := report(ctx, slog.New(slog.DiscardHandler), c, errors.New("sha256 mismatch"), tt.retryFor, wait)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tt.wantErr == errAny && err == nil:
				t.Fatalf("err = nil, want an error")
			case tt.wantErr == ErrRefused && !errors.Is(err, ErrRefused):
				t.Fatalf("err = %v, want ErrRefused", err)
			}
			if tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != tt.calls {
				t.Fatalf("%d requests, want %d", calls, tt.calls)
			}
		})
	}
}

var errAny = errors.New("any error")
