package bootstrap

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/tftp"
)

// TestIntegrationAbuseTFTP: the TFTP server as bootstrapd runs it (the
// package's defaults), on the LAN, under the two floods of issue 15, with
// Debian's atftp as the real client:
//   - 64 read requests from 64 addresses that never answer (spoofed), each
//     asking for the longest timeout: they hold every slot only for the
//     server's own retransmits (seconds, not the 25 minutes 255 s × 6 tries
//     would be), and atftp is served afterwards;
//   - 200 requests from one address: it gets 4 slots, the rest ERRORs, and
//     atftp from another address is served at once.
func TestIntegrationAbuseTFTP(t *testing.T) {
	netlab.Require(t, "atftp")
	l := netlab.New(t)
	gate := l.Host("gate")
	lan := l.Host("lan")
	l.Link(gate, "eth0", "10.79.0.1/24", lan, "eth0", "10.79.0.10/24")
	for i := range 64 {
		lan.MustRun("ip", "addr", "add", fmt.Sprintf("10.79.0.%d/24", 100+i), "dev", "eth0")
	}
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "undionly.kpxe"), make([]byte, 70_000), 0o644)
	os.Chmod(root, 0o755)
	self, _ := os.Executable()
	srv := gate.Start("tftp", []string{"GATE_TFTP_ABUSE_ROOT=" + root}, self, "-test.run=^TestTFTPAbuseHelper$", "-test.v")
	if err := srv.WaitFor("tftp helper ready", 20*time.Second); err != nil {
		t.Fatal(err, srv.Output())
	}
	fetch := func() error { // from 10.79.0.10
		out := filepath.Join(t.TempDir(), "out")
		b, err := lan.Run("atftp", "--option", "blksize 1468", "--option", "tsize 0", "-g", "-r", "undionly.kpxe", "-l", out, "10.79.0.1", "69")
		if err != nil {
			return fmt.Errorf("atftp: %v: %s", err, strings.TrimSpace(b))
		}
		if st, err := os.Stat(out); err != nil || st.Size() != 70_000 {
			return fmt.Errorf("atftp: short file")
		}
		return nil
	}
	flood := func(args ...string) {
		t.Helper()
		out, err := lan.Output(append([]string{self, "-test.run=^TestTFTPFloodHelper$", "-test.v"}, args...)...)
		if err != nil || !strings.Contains(out, "flood sent") {
			t.Fatalf("flood %v: %v\n%s", args, err, out)
		}
	}

	// Spoofed requests from 64 addresses.
	start := time.Now()
	flood("-flood.from=10.79.0.100", "-flood.n=64", "-flood.per=1")
	busy := fetch()
	if err := netlab.Eventually(60*time.Second, 500*time.Millisecond, func() error { return fetch() }); err != nil {
		t.Fatalf("atftp not served after 64 spoofed requests: %v\n%s", err, srv.Output())
	}
	t.Logf("64 spoofed requests held every slot: atftp at once: %v; served %s after the flood", busy, time.Since(start).Round(100*time.Millisecond))

	// 200 requests from one address.
	time.Sleep(8 * time.Second) // the spoofed transfers are gone
	flood("-flood.from=10.79.0.101", "-flood.n=1", "-flood.per=200")
	start = time.Now()
	if err := fetch(); err != nil {
		t.Fatalf("atftp from another address not served during a one-address flood: %v", err)
	}
	t.Logf("200 requests from one address: atftp from another served in %s", time.Since(start).Round(time.Millisecond))
}

// TestTFTPAbuseHelper serves GATE_TFTP_ABUSE_ROOT on 10.79.0.1:69 with
// bootstrapd's settings until killed (a helper process; skips otherwise).
func TestTFTPAbuseHelper(t *testing.T) {
	root := os.Getenv("GATE_TFTP_ABUSE_ROOT")
	if root == "" {
		t.Skip("helper")
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 79, 0, 1), Port: 69})
	if err != nil {
		t.Fatal(err)
	}
	println("tftp helper ready")
	(&tftp.Server{Root: root}).Serve(context.Background(), c)
}
