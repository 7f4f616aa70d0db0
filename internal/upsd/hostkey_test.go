package upsd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"gate/config"
	"gate/internal/hostkeys"
	"gate/internal/metrics"
	"gate/internal/powerplan"
)

// sshServer accepts any client key on addr and answers every exec with
// exit status 0, showing host as its host key.
func sshServer(t *testing.T, addr string, host ssh.Signer) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(host)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					ch, reqs, _ := nc.Accept()
					go func() {
						for r := range reqs {
							r.Reply(r.Type == "exec", nil)
							if r.Type == "exec" {
								ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 0))
								ch.Close()
							}
						}
					}()
				}
			}()
		}
	}()
}

func signer(t *testing.T) ssh.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	return s
}

// hosts[].shutdown.host_key: the only key accepted; without it the first
// key seen is pinned and a changed one refused.
func TestShutdownHostKey(t *testing.T) {
	const ip = "127.0.0.77"
	serverKey := signer(t)
	sshServer(t, ip+":22", serverKey)
	other := signer(t)
	for _, tc := range []struct {
		name, hostKey string
		err           string
	}{
		{"the site file's key", string(ssh.MarshalAuthorizedKey(serverKey.PublicKey())), ""},
		{"another key in the site file", string(ssh.MarshalAuthorizedKey(other.PublicKey())), "not the site file's"},
		{"pinned at first use", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hk := ""
			if tc.hostKey != "" {
				hk = fmt.Sprintf(", host_key: %q", strings.TrimSpace(tc.hostKey))
			}
			dir := t.TempDir()
			c, err := config.Parse("site.yaml", []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 127.0.0.0/8, gateway: 127.0.0.1}
roles: {ceph: {installer: {kernel: "http://127.0.0.1/k"}}}
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: %s, role: ceph, shutdown: {method: ssh%s}}
ups:
  source: usb
  shutdown_groups: [{name: ceph, timeout: 20s}]
`, ip, hk)), dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.InitSecrets(); err != nil {
				t.Fatal(err)
			}
			d, err := New(c, slog.New(slog.DiscardHandler), metrics.NewRegistry(), filepath.Join(dir, "journal"))
			if err != nil {
				t.Fatal(err)
			}
			d.HostKeys = &hostkeys.Store{Path: filepath.Join(dir, "known_hosts")}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = d.SSHShutdown(ctx, powerplan.Host{Name: "ceph-1", SSH: true})
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("SSHShutdown: %v, want %q", err, tc.err)
			}
			if tc.hostKey == "" {
				// The pin holds: the same host with another key is refused.
				sshServerSwap(t, d, ip, other)
			}
		})
	}
}

// sshServerSwap shows that, once pinned, another key at the same address
// is refused.
func sshServerSwap(t *testing.T, d *Daemon, ip string, key ssh.Signer) {
	cb := d.HostKeys.Callback(nil)
	if err := cb(ip+":22", &net.TCPAddr{IP: net.ParseIP(ip), Port: 22}, key.PublicKey()); err == nil || !strings.Contains(err.Error(), "pinned at first use") {
		t.Errorf("a changed key after the first use: %v", err)
	}
}
