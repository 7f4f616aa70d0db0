// Package poweroff powers the gate off the way gokrazy does it itself:
// gokrazy's init gives every service SIGTERM (and time to save its state:
// the clock its time, the others their journals), unmounts /perm, then
// asks the kernel to power off. A bare reboot(2) from a daemon skips all
// that: /perm comes back needing recovery and the clock's floor is stale.
//
// The local interface is gokrazy's own: POST /poweroff on its web server
// (loopback, the port of /etc/http-port.txt, basic auth as user gokrazy
// with the password of /perm/gokr-pw.txt, else /etc/gokr-pw.txt), asked
// to return at once (async) so that the caller, a service itself, can be
// stopped in turn.
package poweroff

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Gokrazy asks gokrazy's init for an orderly power-off.
type Gokrazy struct {
	// PortFile and PasswordFiles are gokrazy's (defaults: /etc/http-port.txt;
	// /perm/gokr-pw.txt, /etc/gokr-pw.txt: the first that exists).
	PortFile      string
	PasswordFiles []string
	// WaitPerSignal is how long each service gets after SIGTERM before
	// SIGKILL (default 20s).
	WaitPerSignal time.Duration
	// Client defaults to one with a 10 s timeout.
	Client *http.Client
}

// Request asks for the power-off and returns once gokrazy has accepted it.
func (g *Gokrazy) Request(ctx context.Context) error {
	portFile := g.PortFile
	if portFile == "" {
		portFile = "/etc/http-port.txt"
	}
	pwFiles := g.PasswordFiles
	if pwFiles == nil {
		pwFiles = []string{"/perm/gokr-pw.txt", "/etc/gokr-pw.txt"}
	}
	wait := g.WaitPerSignal
	if wait == 0 {
		wait = 20 * time.Second
	}
	client := g.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	port := "80"
	if b, err := os.ReadFile(portFile); err == nil && strings.TrimSpace(string(b)) != "" {
		port = strings.TrimSpace(string(b))
	}
	var pw string
	for _, f := range pwFiles {
		if b, err := os.ReadFile(f); err == nil {
			pw = strings.TrimSpace(string(b))
			break
		}
	}
	if pw == "" {
		return fmt.Errorf("gokrazy's password: none of %s readable", strings.Join(pwFiles, ", "))
	}
	form := url.Values{"async": {"true"}, "wait_per_signal": {wait.String()}}
	u := "http://" + net.JoinHostPort("127.0.0.1", port) + "/poweroff"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("gokrazy", pw)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("gokrazy's power-off at %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gokrazy's power-off at %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
