package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gate/config"
	"gate/internal/bootstrap"
)

// bootstrapAPI talks to bootstrapd's authenticated API.
type bootstrapAPI struct {
	base  string
	token string
	hc    *http.Client
}

func newBootstrapAPI(c *config.Config, host string) (*bootstrapAPI, error) {
	if c.Bootstrap == nil {
		return nil, fmt.Errorf("the site file has no bootstrap section: re-imaging is off")
	}
	tok, err := c.ReadSecret(c.Bootstrap.APIToken)
	if err != nil {
		return nil, fmt.Errorf("bootstrap.api_token: %w", err)
	}
	return &bootstrapAPI{base: "http://" + net.JoinHostPort(gateHost(c, host), strconv.Itoa(c.Bootstrap.HTTPPort)),
		token: strings.TrimSpace(string(tok)), hc: &http.Client{Timeout: 15 * time.Second}}, nil
}

func (a *bootstrapAPI) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching bootstrapd at %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bootstrapd at %s: %s: %s", a.base, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("bootstrapd at %s: bad answer: %w", a.base, err)
	}
	return nil
}

func cmdReimage(e *env, args []string) error {
	fs := newFlags(e, "reimage", "[-c FILE] [--host ADDR] [--cancel] HOST")
	site := siteFlag(fs)
	host := fs.String("host", "", "the gate's address (default: gate.update_host, else its static address, else its host name)")
	cancel := fs.Bool("cancel", false, "cancel a pending re-imaging")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"name exactly one host"}
	}
	name := fs.Arg(0)
	c, err := loadSite(e, *site)
	if err != nil {
		return err
	}
	found := false
	for _, h := range c.Hosts {
		found = found || h.Name == name
	}
	if !found {
		return fmt.Errorf("no host %q in the site file", name)
	}
	api, err := newBootstrapAPI(c, *host)
	if err != nil {
		return err
	}
	method := http.MethodPost
	if *cancel {
		method = http.MethodDelete
	}
	var st bootstrap.HostStatus
	if err := api.do(context.Background(), method, "/api/hosts/"+url.PathEscape(name)+"/reimage", &st); err != nil {
		return err
	}
	if *cancel {
		fmt.Fprintf(e.stdout, "%s: re-imaging cancelled; it boots from its disk.\n", name)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: flagged for re-imaging (instance %s).\nPower it on or reboot it with network boot (PXE) first; `gate hosts` follows the install.\n", name, st.InstanceID)
	return nil
}
