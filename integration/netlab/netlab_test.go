package netlab

import (
	"strings"
	"testing"
	"time"
)

func TestIntegrationLinkAndBridge(t *testing.T) {
	Require(t, "ping")
	l := New(t)
	sw, a, b := l.Host("sw"), l.Host("a"), l.Host("b")
	sw.Bridge("br0", "")
	l.Attach(sw, "br0", a, "eth0", "10.250.0.1/24")
	l.Attach(sw, "br0", b, "eth0", "10.250.0.2/24")
	if _, err := a.Run("ping", "-c1", "-W2", "10.250.0.2"); err != nil {
		t.Fatalf("a cannot reach b over the bridge: %v", err)
	}
	p := b.Start("echo", nil, "sh", "-c", "echo hello; sleep 30")
	if err := p.WaitFor("hello", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if !strings.Contains(p.Output(), "hello") {
		t.Fatalf("output %q", p.Output())
	}
	if err := p.WaitFor("never", 100*time.Millisecond); err == nil {
		t.Fatal("WaitFor on an exited process succeeded")
	}
}

func TestLabPrefix(t *testing.T) {
	for _, tc := range []struct {
		env, want string
		ok        bool
	}{
		{"", "t", true},
		{"w3u", "w3u", true},
		{"abc", "abc", true},
		{"abcd", "", false}, // interface names would pass 15 bytes
		{"W3u", "", false},
		{"w-3", "", false},
		{"w3u/", "", false},
	} {
		got, err := labPrefix(tc.env)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("labPrefix(%q) = %q, %v; want %q (ok %v)", tc.env, got, err, tc.want, tc.ok)
		}
	}
}
