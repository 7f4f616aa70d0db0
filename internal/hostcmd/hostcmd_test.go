package hostcmd

import (
	"crypto/ed25519"
	encpem "encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		host     string
		steps    []string
		shutdown string
		want     []string
	}{
		{"ceph-1", []string{CephNoout}, "", []string{"ceph osd set noout", "ceph osd unset noout"}},
		{"compute-1", []string{K3sDrain}, "poweroff", []string{
			"kubectl drain compute-1 --ignore-daemonsets --delete-emptydir-data --force --timeout=60s",
			"kubectl uncordon compute-1", "poweroff"}},
		{"x", []string{"bogus"}, "", nil},
		{"x", nil, "systemctl poweroff", []string{"systemctl poweroff"}},
	} {
		got := Allowed(tc.host, tc.steps, tc.shutdown)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("Allowed(%s, %v, %q) = %q, want %q", tc.host, tc.steps, tc.shutdown, got, tc.want)
		}
	}
}

// TestScript runs the forced command with /bin/sh: exactly the allowed
// commands run; anything longer, shorter, globbed or chained is refused
// and runs nothing.
func TestScript(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	allowed := []string{
		"echo ok >" + mark,
		"echo 'q' >" + mark, // quotes inside
		"echo * >" + mark,   // a glob character, literal
	}
	script := filepath.Join(dir, "gate-command")
	if err := os.WriteFile(script, []byte(Script(allowed)), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		runs bool
	}{
		{"echo ok >" + mark, true},
		{"echo * >" + mark, true},
		{"echo 'q' >" + mark, true},
		{"echo q >" + mark, false},
		{"echo anything >" + mark, false}, // would match the unquoted glob
		{"echo ok >" + mark + "; touch " + mark + "2", false},
		{"echo ok >" + mark + " ", false},
		{"", false},
		{"sh", false},
	} {
		os.Remove(mark)
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Env = []string{"SSH_ORIGINAL_COMMAND=" + tc.cmd, "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		_, statErr := os.Stat(mark)
		ran := statErr == nil
		if ran != tc.runs || (err == nil) != tc.runs {
			t.Errorf("%q: ran %v (err %v, output %q), want %v", tc.cmd, ran, err, out, tc.runs)
		}
		if !tc.runs && !strings.Contains(string(out), "gate-command: refused") {
			t.Errorf("%q: refusal not said: %q", tc.cmd, out)
		}
	}
}

func TestAuthorizedKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	pem, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	k, err := PublicKey(encpem.EncodeToMemory(pem))
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	line := AuthorizedKey(k)
	parsed, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if string(parsed.Marshal()) != string(sp.Marshal()) {
		t.Errorf("%q: not the key", line)
	}
	if strings.Join(opts, ",") != `restrict,command="`+ScriptPath+`"` {
		t.Errorf("%q: options %q", line, opts)
	}
	if _, err := PublicKey([]byte("not a key")); err == nil {
		t.Error("a bad key was accepted")
	}
}
