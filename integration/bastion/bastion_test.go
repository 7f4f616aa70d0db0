// Package bastion tests cmd/bastion with real OpenSSH: ssh -J and scp
// through it into real sshd servers, and every refusal a jump host owes.
package bastion

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

type lab struct {
	t        *testing.T
	s        *site.Site
	gate     *netlab.Host
	admin    *netlab.Host
	proc     *netlab.Proc
	dir      string
	key      string // the admin's private key
	otherKey string // a key the site does not know
	state    string
}

const gateAddr = "192.168.1.2"

func newLab(t *testing.T) *lab {
	netlab.Require(t, "ssh", "scp", "sshd", "ssh-keygen")
	s := site.New(t, site.Options{})
	l := &lab{t: t, s: s, dir: s.Dir}
	l.gate = s.Lab.Host("gate")
	s.Lab.Attach(s.Switch, "br0", l.gate, "eth0", gateAddr+"/24")
	l.admin = s.Lab.Host("admin")
	s.Lab.Attach(s.Switch, "br0", l.admin, "eth0", "192.168.1.50/24")

	l.key = filepath.Join(l.dir, "admin_key")
	l.otherKey = filepath.Join(l.dir, "other_key")
	for _, k := range []string{l.key, l.otherKey} {
		if out, err := l.admin.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k); err != nil {
			t.Fatal(out, err)
		}
	}
	pub, _ := os.ReadFile(l.key + ".pub")
	other, _ := os.ReadFile(l.otherKey + ".pub")
	// The servers accept both keys: only the bastion tells them apart.
	for _, name := range []string{"ceph-1", "compute-1"} {
		s.StartSSHD(s.Server(name), []string{strings.TrimSpace(string(pub)), strings.TrimSpace(string(other))})
	}
	siteFile := filepath.Join(l.dir, "site.yaml")
	os.WriteFile(siteFile, []byte(fmt.Sprintf(`site: {name: lab}
lan: {subnet: 192.168.1.0/24, gateway: 192.168.1.1}
gate: {hostname: gate-1, address: %s/24}
roles: {ceph: {installer: {kernel: "http://192.168.1.2/k"}}}
hosts:
  - {name: ceph-1, macs: ["52:54:00:00:01:01"], ip: 192.168.1.11, role: ceph}
  - {name: compute-1, macs: ["52:54:00:00:02:01"], ip: 192.168.1.21, role: ceph}
bastion:
  listen_lan: true
  idle_timeout: 1m
  ban_after: 3
  ban_for: 1m
  users:
    - name: admin
      keys: [%q]
      allow: ["ceph-1:22"]
`, gateAddr, strings.TrimSpace(string(pub)))), 0o644)
	gateCLI := netlab.Build(t, "gate/gate")
	if out, err := l.gate.Run(gateCLI, "secrets", "init", "-c", siteFile); err != nil {
		t.Fatal(out, err)
	}
	l.state = filepath.Join(l.dir, "state")
	l.proc = l.gate.Start("bastion", nil, netlab.Build(t, "gate/cmd/bastion"), "-config", siteFile,
		"-secrets", filepath.Join(l.dir, "secrets"), "-state", l.state, "-metrics", "127.0.0.1:9105")
	if err := l.proc.WaitFor("msg=ready", 20*time.Second); err != nil {
		t.Fatal(err, l.proc.Output())
	}
	return l
}

// config writes an ssh_config using key for every host: OpenSSH passes
// -F (not -o) on to the jump connection it opens for -J.
func (l *lab) config(key string) string {
	p := key + ".config"
	os.WriteFile(p, []byte(fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  ConnectTimeout 10\n", key)), 0o600)
	return p
}

// ssh runs the real OpenSSH client in the admin's namespace.
func (l *lab) ssh(key string, args ...string) (string, error) {
	return l.admin.Run(append([]string{"ssh", "-F", l.config(key)}, args...)...)
}

func TestIntegrationBastion(t *testing.T) {
	l := newLab(t)
	jump := "admin@" + gateAddr

	t.Run("jump", func(t *testing.T) {
		out, err := l.ssh(l.key, "-J", jump, "root@ceph-1", "echo on $(hostname -I)")
		if err != nil || !strings.Contains(out, "on 192.168.1.11") {
			t.Fatalf("ssh -J: %v\n%s", err, out)
		}
	})
	t.Run("scp", func(t *testing.T) {
		src := filepath.Join(l.dir, "payload")
		data := make([]byte, 3<<20)
		rand.Read(data)
		os.WriteFile(src, data, 0o644)
		dst := filepath.Join(l.dir, "copied")
		out, err := l.admin.Run("scp", "-F", l.config(l.key), "-J", jump, src, "root@ceph-1:"+dst)
		if err != nil {
			t.Fatalf("scp: %v %s", err, out)
		}
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, data) {
			t.Fatal("scp through the bastion corrupted the file")
		}
	})
	t.Run("target not allowed", func(t *testing.T) {
		out, err := l.ssh(l.key, "-J", jump, "root@compute-1", "true")
		if err == nil || !strings.Contains(out, "administratively prohibited") || !strings.Contains(out, "may not reach compute-1") {
			t.Fatalf("compute-1 reached or wrong message: %v\n%s", err, out)
		}
	})
	t.Run("no shell on the bastion", func(t *testing.T) {
		out, err := l.ssh(l.key, jump, "id")
		if err == nil || !strings.Contains(out, "jump host") {
			t.Fatalf("a command ran on the bastion: %v\n%s", err, out)
		}
	})
	t.Run("no remote forwarding", func(t *testing.T) {
		out, err := l.ssh(l.key, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "2222:127.0.0.1:22", jump)
		if err == nil || !strings.Contains(out, "remote port forwarding failed") {
			t.Fatalf("-R accepted: %v\n%s", err, out)
		}
	})
	t.Run("password refused", func(t *testing.T) {
		out, err := l.admin.Run("ssh", "-F", "/dev/null", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", jump, "true")
		if err == nil || !strings.Contains(out, "Permission denied (publickey)") {
			t.Fatalf("password auth: %v\n%s", err, out)
		}
	})
	t.Run("unknown key refused", func(t *testing.T) {
		out, err := l.ssh(l.otherKey, "-J", jump, "root@ceph-1", "true")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("unknown key: %v\n%s", err, out)
		}
	})
	t.Run("audit", func(t *testing.T) {
		// A forwarded channel's record is written once both directions
		// have closed, which may be just after the client exits.
		var log string
		err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
			b, _ := os.ReadFile(filepath.Join(l.state, "audit.log"))
			log = string(b)
			for _, want := range []string{`"destination":"ceph-1:22","resolved":"192.168.1.11:22"`, `"result":"closed"`, `"user":"admin"`, `"key":"SHA256:`,
				`"source":"192.168.1.50:`, `"bytes_to_server":`, `"duration":"`, `may not reach compute-1`, `"destination":"session"`} {
				if !strings.Contains(log, want) {
					return fmt.Errorf("audit log lacks %s", want)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%v:\n%s", err, log)
		}
		if !strings.Contains(l.proc.Output(), "msg=audit") {
			t.Error("no audit line on stdout")
		}
	})
	// Last: ban after repeated failures, then even the right key is refused.
	t.Run("ban", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			l.ssh(l.otherKey, jump, "true")
		}
		out, err := l.ssh(l.key, "-J", jump, "root@ceph-1", "true")
		if err == nil {
			t.Fatalf("a banned source got through:\n%s", out)
		}
		if !strings.Contains(l.proc.Output(), "source banned") || !strings.Contains(l.proc.Output(), "after_failures=3") {
			t.Errorf("no ban after 3 failures logged:\n%s", site.Tail(l.proc.Output(), 10))
		}
	})
	t.Run("metrics", func(t *testing.T) {
		m, err := l.gate.Output("curl", "-sf", "http://127.0.0.1:9105/metrics")
		if err != nil {
			t.Fatal(err, m)
		}
		for _, want := range []string{"gate_bastion_bans_total 1", `gate_bastion_channels_total{result="opened"}`, `gate_bastion_channels_total{result="refused"}`,
			`gate_bastion_connections_total{result="banned"}`, `gate_bastion_auth_failures_total{method="publickey"}`, `gate_bastion_bytes_total{direction="to_server"}`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestSideBySideBastion: scp of a large file through the bastion vs
// directly, and connection setup time through the jump vs direct.
func TestSideBySideBastion(t *testing.T) {
	netlab.Bench(t, "ssh", "scp", "sshd")
	l := newLab(t)
	jump := "admin@" + gateAddr
	src := filepath.Join(l.dir, "big")
	f, _ := os.Create(src)
	f.Truncate(256 << 20)
	f.Close()
	timed := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := l.admin.Run(args...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		return time.Since(start)
	}
	cfg := l.config(l.key)
	direct := timed("scp", "-F", cfg, src, "root@192.168.1.11:"+src+".direct")
	jumped := timed("scp", "-F", cfg, "-J", jump, src, "root@ceph-1:"+src+".jumped")
	mb := float64(256)
	netlab.Report(t, "bastion_scp_256MiB_direct", mb/direct.Seconds(), "MiB/s")
	netlab.Report(t, "bastion_scp_256MiB_jump", mb/jumped.Seconds(), "MiB/s")
	netlab.Report(t, "bastion_scp_throughput_ratio_jump_over_direct", direct.Seconds()/jumped.Seconds(), "x")
	const n = 5
	var d, j time.Duration
	for i := 0; i < n; i++ {
		d += timed("ssh", "-F", cfg, "root@192.168.1.11", "true")
		j += timed("ssh", "-F", cfg, "-J", jump, "root@ceph-1", "true")
	}
	netlab.Report(t, "bastion_ssh_setup_direct", (d/n).Seconds()*1000, "ms")
	netlab.Report(t, "bastion_ssh_setup_jump", (j/n).Seconds()*1000, "ms")
	netlab.Report(t, "bastion_ssh_setup_ratio_jump_over_direct", float64(j)/float64(d), "x")
}
