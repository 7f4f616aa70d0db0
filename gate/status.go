package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"gate/config"
	"gate/internal/status"
)

// gateHost is where the operator's commands reach the gate: --host, else
// gate.update_host, else its static address, else its host name.
func gateHost(c *config.Config, host string) string {
	if host == "" {
		host = c.Gate.UpdateHost
	}
	if host == "" {
		if p, ok := c.GateAddr(); ok {
			host = p.Addr().String()
		} else {
			host = c.Gate.Hostname
		}
	}
	return host
}

func cmdStatus(e *env, args []string) error {
	fs := newFlags(e, "status", "[-c FILE] [--host ADDR] [--json]")
	site := siteFlag(fs)
	host := fs.String("host", "", "the gate's address (default: gate.update_host, else its static address, else its host name)")
	raw := fs.Bool("json", false, "print the JSON as the gate serves it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	c, err := loadSite(e, *site)
	if err != nil {
		return err
	}
	if c.Status == nil {
		return fmt.Errorf("the site file has no status section: the status page is off")
	}
	pw, err := c.ReadSecret(c.Gate.Password)
	if err != nil {
		return fmt.Errorf("gate.password: %w", err)
	}
	_, port, _ := net.SplitHostPort(c.Status.Listen)
	url := "http://" + net.JoinHostPort(gateHost(c, *host), port) + "/status.json"
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("gokrazy", string(pw))
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("reaching statusd: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("statusd at %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if *raw {
		_, err := e.stdout.Write(body)
		return err
	}
	var s status.Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("statusd at %s: bad answer: %w", url, err)
	}
	return status.WriteText(e.stdout, &s)
}

// statusPlan is gate check's line for statusd.
func statusPlan(w io.Writer, c *config.Config) {
	if c.Status == nil && c.Alerts == nil {
		fmt.Fprintln(w, "  statusd     off (no status or alerts section)")
		return
	}
	page := "no page (no status section)"
	if s := c.Status; s != nil {
		var allow []string
		for _, p := range s.Allow {
			allow = append(allow, p.String())
		}
		page = fmt.Sprintf("status page on %s for %s (user gokrazy, gate.password)", s.Listen, strings.Join(allow, " "))
	}
	alerts := "no alerts"
	if a := c.Alerts; a != nil {
		var to []string
		if a.Webhook != nil {
			to = append(to, "webhook")
		}
		if e := a.Email; e != nil {
			to = append(to, fmt.Sprintf("e-mail to %s via %s (%s)", strings.Join(e.To, ", "), e.Server, e.TLS))
		}
		alerts = fmt.Sprintf("alerts by %s, at most %d per source per %s", strings.Join(to, " and "), a.Limit, a.Window.D())
	}
	fmt.Fprintf(w, "  statusd     %s; %s\n", page, alerts)
}
