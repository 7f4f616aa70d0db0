// Package poweroff powers the gate off the way gokrazy does it itself:
// gokrazy's init gives every service SIGTERM (and time to save its state:
// the clock its time, the others their journals), unmounts /perm, then
// asks the kernel to power off. A bare reboot(2) from a daemon skips all
// that: /perm comes back needing recovery and the clock's floor is stale.
//
// The local interface is gokrazy's own: POST /poweroff on its web server
// (loopback, the port of /etc/http-port.txt, basic auth as user gokrazy
// with the password of /perm/gokr-pw.txt, else /etc/gokr-pw.txt), in its
// synchronous form: gokrazy stops the services and unmounts /perm before
// it powers off. (Its async form powers off one second after answering,
// whether the services have stopped or not.) The caller, a service itself,
// is stopped along the way, so it never sees the answer: Request only
// waits a moment for an early refusal.
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
	// Client defaults to http.DefaultClient's like.
	Client *http.Client
	// Early is how long Request waits for a refusal (default 3 s).
	Early time.Duration
}

// Request asks for the power-off. It returns an error when gokrazy
// refuses at once (not listening, a wrong password); otherwise nil once
// gokrazy has had Early (default 3 s) to refuse, while it goes on stopping
// every service, the caller's process included.
func (g *Gokrazy) Request(ctx context.Context) error {
	req, err := g.request(ctx)
	if err != nil {
		return err
	}
	client := g.Client
	if client == nil {
		// No timeout: the answer comes only after every service has
		// stopped (up to two WaitPerSignal), if this process is still
		// there to read it.
		client = &http.Client{}
	}
	early := g.Early
	if early == 0 {
		early = 3 * time.Second
	}
	done := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			done <- fmt.Errorf("gokrazy's power-off at %s: %w", req.URL, err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("gokrazy's power-off at %s: %s: %s", req.URL, resp.Status, strings.TrimSpace(string(body)))
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(early):
		return nil // stopping the services: no refusal
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request builds the POST from gokrazy's files.
func (g *Gokrazy) request(ctx context.Context) (*http.Request, error) {
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
		return nil, fmt.Errorf("gokrazy's password: none of %s readable", strings.Join(pwFiles, ", "))
	}
	form := url.Values{"wait_per_signal": {wait.String()}}
	u := "http://" + net.JoinHostPort("127.0.0.1", port) + "/poweroff"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("gokrazy", pw)
	return req, nil
}
