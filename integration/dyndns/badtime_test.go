package dyndns

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/dyndns"
)

// TestIntegrationRFC2136BadTime: an update signed by a Pi still in 1970
// (no NTP answer yet after a power cut) is refused by BIND with TSIG
// BADTIME. That is the gate's clock, not its key: a retryable error, never
// the block a wrong key gets; signed with the right time, the same
// provider's update goes through.
func TestIntegrationRFC2136BadTime(t *testing.T) {
	l := newLab(t)
	ns := enterNS(t, l.gate)
	clock := time.Unix(27, 0)
	p := &dyndns.RFC2136{Server: dnsAddr.String() + ":53", Zone: "example.org", KeyName: "gate-key", Secret: l.secret, Now: func() time.Time { return clock }}
	rec := dyndns.Record{Name: "home.example.org", Type: "A", TTL: time.Minute}
	addr := netip.MustParseAddr("203.0.113.77")
	update := func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if !ns.do(func() { err = p.Update(ctx, rec, addr) }) {
			t.Fatal("namespace thread ended")
		}
		return err
	}
	var err error
	netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		if err = update(); err != nil && strings.Contains(err.Error(), "connection refused") {
			return err // BIND still starting
		}
		return nil
	})
	var perm *dyndns.PermanentError
	if err == nil || errors.As(err, &perm) || !strings.Contains(err.Error(), "BADTIME") {
		t.Fatalf("update signed in 1970: %v (want a retryable BADTIME error)\n%s", err, l.named.Output())
	}
	clock = time.Now()
	if err := update(); err != nil {
		t.Fatalf("update with the right time: %v", err)
	}
	if got := l.record(); got != addr.String() {
		t.Errorf("home.example.org A = %q, want %s", got, addr)
	}
}
