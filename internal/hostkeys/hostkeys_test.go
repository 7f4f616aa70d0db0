package hostkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func key(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCallback(t *testing.T) {
	s := &Store{Path: filepath.Join(t.TempDir(), "known_hosts")}
	a, b := key(t), key(t)
	remote := &net.TCPAddr{IP: net.IPv4(192, 168, 1, 11), Port: 22}
	remote2 := &net.TCPAddr{IP: net.IPv4(192, 168, 1, 12), Port: 22}
	tofu := s.Callback(nil)
	for _, tc := range []struct {
		name   string
		cb     ssh.HostKeyCallback
		addr   string
		remote net.Addr
		key    ssh.PublicKey
		err    string
	}{
		{"first use pins", tofu, "192.168.1.11:22", remote, a, ""},
		{"same key", tofu, "192.168.1.11:22", remote, a, ""},
		{"changed key refused", tofu, "192.168.1.11:22", remote, b, "not the one pinned at first use"},
		{"another host pins its own", tofu, "192.168.1.12:22", remote2, b, ""},
		{"its own again", tofu, "192.168.1.12:22", remote2, b, ""},
		{"site file pin", s.Callback(a), "192.168.1.13:22", remote, a, ""},
		{"site file pin refuses others", s.Callback(a), "192.168.1.13:22", remote, b, "not the site file's"},
	} {
		err := tc.cb(tc.addr, tc.remote, tc.key)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	st, err := os.Stat(s.Path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts: %v %v", st, err)
	}
	b2, _ := os.ReadFile(s.Path)
	if n := strings.Count(string(b2), "\n"); n != 2 {
		t.Errorf("known_hosts has %d lines, want 2:\n%s", n, b2)
	}
	// A new store on the same file keeps the pins (a restart of upsd).
	if err := (&Store{Path: s.Path}).Callback(nil)("192.168.1.11:22", remote, b); err == nil {
		t.Error("a restart forgot the pin")
	}
}
