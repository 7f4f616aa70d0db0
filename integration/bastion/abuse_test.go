package bastion

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationAbuseBastion: a thousand connections from one source,
// then from 25, held without a word while the admin jumps with real
// OpenSSH; then an agent with five other keys before the right one logs
// in twenty times without being banned (ban_after is 3).
func TestIntegrationAbuseBastion(t *testing.T) {
	l := newLab(t)
	jump := "admin@" + gateAddr
	fh, srcs := l.s.Flooder(25)
	before := site.RSS(t, l.proc)
	t.Logf("bastion RSS before the floods: %d KiB", before)
	for _, tc := range []struct {
		name string
		srcs []string
	}{{"one source", srcs[:1]}, {"25 sources", srcs}} {
		p, report := site.Flood(t, fh, gateAddr+":22", 1000, tc.srcs)
		t.Logf("%s: %s (held: in their handshake until its 30 s deadline)", tc.name, report.Line)
		start := time.Now()
		out, err := l.ssh(l.key, "-J", jump, "root@ceph-1", "echo on $(hostname -I)")
		if err != nil || !strings.Contains(out, "on 192.168.1.11") {
			t.Errorf("%s: ssh -J while flooded: %v\n%s", tc.name, err, out)
		}
		t.Logf("%s: ssh -J while flooded took %s; bastion RSS %d KiB", tc.name, time.Since(start).Round(time.Millisecond), site.RSS(t, l.proc))
		if report.Held >= 1000 {
			t.Errorf("%s: the bastion held every connection: %s", tc.name, report.Line)
		}
		p.Kill()
	}
	time.Sleep(2 * time.Second)
	t.Logf("bastion RSS after the floods: %d KiB (before: %d KiB)", site.RSS(t, l.proc), before)

	// An agent offering five other keys first.
	sock := filepath.Join(l.dir, "agent.sock")
	agent := l.admin.Start("ssh-agent", nil, "ssh-agent", "-D", "-a", sock)
	if err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		_, err := os.Stat(sock)
		return err
	}); err != nil {
		t.Fatal(err, agent.Output())
	}
	for i := 0; i < 5; i++ {
		k := filepath.Join(l.dir, fmt.Sprintf("agent_key%d", i))
		l.admin.MustRun("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
		l.admin.MustRun("env", "SSH_AUTH_SOCK="+sock, "ssh-add", "-q", k)
	}
	l.admin.MustRun("env", "SSH_AUTH_SOCK="+sock, "ssh-add", "-q", l.key)
	cfg := filepath.Join(l.dir, "agent.config")
	os.WriteFile(cfg, []byte(fmt.Sprintf("Host *\n  IdentityAgent %s\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  ConnectTimeout 10\n", sock)), 0o600)
	for i := 1; i <= 20; i++ {
		if out, err := l.admin.Run("ssh", "-F", cfg, "-J", jump, "root@ceph-1", "true"); err != nil {
			t.Fatalf("login %d with an agent holding five other keys first: %v\n%s\n%s", i, err, out, l.proc.Output())
		}
	}
	if strings.Contains(l.proc.Output(), "source banned") {
		t.Error("a source was banned")
	}
}
