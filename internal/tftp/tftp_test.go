package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"gate/integration/netlab"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		file    string
		options map[string]string
	}{
		{"\x00\x01a.bin\x00octet\x00", true, "a.bin", map[string]string{}},
		{"\x00\x01a\x00OCTET\x00blksize\x001468\x00tsize\x000\x00", true, "a", map[string]string{"blksize": "1468", "tsize": "0"}},
		{"\x00\x01a\x00octet\x00blksize\x00", false, "", nil},
		{"\x00\x01a\x00octet", false, "", nil},
		{"\x00\x03a\x00octet\x00", false, "", nil},
		{"\x00\x01\x00octet\x00", false, "", nil},
		{"\x00\x01a\x00weird\x00", false, "", nil},
		{"\x00", false, "", nil},
	} {
		r, err := ParseRequest([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			continue
		}
		if r.Filename != tc.file || len(r.Options) != len(tc.options) {
			t.Errorf("%q: got %+v", tc.in, r)
		}
		for k, v := range tc.options {
			if r.Options[k] != v {
				t.Errorf("%q: option %s=%q, want %q", tc.in, k, r.Options[k], v)
			}
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x01a.bin\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x004\x00"))
	f.Add([]byte("\x00\x02x\x00netascii\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		n := negotiate(r, 12345, 10)
		if n.blksize < 8 || n.blksize > 65464 || n.windowsize < 1 || n.timeoutSec < 0 || n.timeoutSec > 10 {
			t.Fatalf("bad negotiation %+v", n)
		}
	})
}

func startServer(t *testing.T, root string) int {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { (&Server{Root: root}).Serve(ctx, c); close(done) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestIntegrationClients fetches files with Debian's tftp-hpa and atftp
// clients with each option, and checks traversal is refused.
func TestIntegrationClients(t *testing.T) {
	netlab.Require(t, "tftp", "atftp")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644)
	os.Symlink("../secret", filepath.Join(root, "link"))
	data := make([]byte, 3<<20+77)
	rand.Read(data)
	os.WriteFile(filepath.Join(root, "big.bin"), data, 0o644)
	small := make([]byte, 600*1024) // 76800 blocks of 8 bytes: the block number wraps
	rand.Read(small)
	os.WriteFile(filepath.Join(root, "wrap.bin"), small, 0o644)
	os.WriteFile(filepath.Join(root, "empty"), nil, 0o644)
	port := strconv.Itoa(startServer(t, root))

	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		file string
		want []byte
		args []string
	}{
		{"hpa plain", "big.bin", data, []string{"tftp", "127.0.0.1", port, "-m", "binary", "-c", "get", "big.bin", out}},
		{"atftp plain", "big.bin", data, []string{"atftp", "-g", "-r", "big.bin", "-l", out, "127.0.0.1", port}},
		{"atftp blksize 1468 tsize", "big.bin", data, []string{"atftp", "--option", "blksize 1468", "--option", "tsize", "-g", "-r", "big.bin", "-l", out, "127.0.0.1", port}},
		{"atftp timeout", "big.bin", data, []string{"atftp", "--option", "timeout 2", "-g", "-r", "big.bin", "-l", out, "127.0.0.1", port}},
		{"atftp windowsize 8", "big.bin", data, []string{"atftp", "--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r", "big.bin", "-l", out, "127.0.0.1", port}},
		{"atftp blksize 8 wraps", "wrap.bin", small, []string{"atftp", "--option", "blksize 8", "-g", "-r", "wrap.bin", "-l", out, "127.0.0.1", port}},
		{"atftp empty", "empty", []byte{}, []string{"atftp", "-g", "-r", "empty", "-l", out, "127.0.0.1", port}},
		{"atftp traversal", "../secret", nil, []string{"atftp", "-g", "-r", "../secret", "-l", out, "127.0.0.1", port}},
		{"atftp symlink out", "link", nil, []string{"atftp", "-g", "-r", "link", "-l", out, "127.0.0.1", port}},
		{"hpa traversal", "../secret", nil, []string{"tftp", "127.0.0.1", port, "-m", "binary", "-c", "get", "../secret", out}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			b, err := exec.Command(tc.args[0], tc.args[1:]...).CombinedOutput()
			got, rerr := os.ReadFile(out)
			if tc.want == nil {
				if rerr == nil && len(got) > 0 {
					t.Fatalf("traversal served %d bytes (%v): %s", len(got), err, b)
				}
				return
			}
			if rerr != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("%v: got %d bytes, want %d (%v): %s", tc.args, len(got), len(tc.want), err, b)
			}
		})
	}
}
