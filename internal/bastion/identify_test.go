package bastion

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestIdentifyInAudit: the overlay network's name for the source (the
// tailnet's user and node) is asked with the source address and recorded
// in every audit record.
func TestIdentifyInAudit(t *testing.T) {
	asked := make(chan string, 8)
	addr, port, cc, audit := loopback(t, func(c *Config) {
		c.Identify = func(source string) string { asked <- source; return "alice@example.org on laptop" }
	})
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	if _, err := c.Dial("tcp", net.JoinHostPort("echo", strconv.Itoa(port+1))); err == nil {
		t.Fatal("a port outside the allow list was reached")
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(audit.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(audit.String(), `"peer":"alice@example.org on laptop"`) {
		t.Errorf("audit lacks the peer:\n%s", audit)
	}
	if got := <-asked; got != local {
		t.Errorf("Identify asked about %q, want the client's address %q", got, local)
	}
}
