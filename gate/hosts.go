package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"gate/internal/bootstrap"
)

func cmdHosts(e *env, args []string) error {
	fs := newFlags(e, "hosts", "[-c FILE] [--host ADDR]")
	site := siteFlag(fs)
	host := fs.String("host", "", "the gate's address (default: gate.update_host, else its static address, else its host name)")
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
	api, err := newBootstrapAPI(c, *host)
	if err != nil {
		return err
	}
	var hosts []bootstrap.HostStatus
	if err := api.do(context.Background(), "GET", "/api/hosts", &hosts); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tIP\tROLE\tPOWER\tSTATE\tLAST BOOT\tPROGRESS\tLAST RESULT")
	ret := ""
	for _, h := range hosts {
		state := h.Phase
		if state == "" {
			state = "boots from disk"
		}
		boot := "-"
		if !h.LastBoot.IsZero() {
			boot = ago(h.LastBoot) + " → " + h.LastBootTo
		}
		prog := "-"
		if h.Total > 0 {
			prog = fmt.Sprintf("%d%% of %d MiB", h.Written*100/h.Total, h.Total>>20)
		}
		res := h.LastResult
		if res == "" {
			res = "-"
		}
		if h.Phase == "" && !h.InstalledAt.IsZero() && res == "ok" {
			res = "installed " + ago(h.InstalledAt)
		}
		power := "-"
		if h.Power != nil {
			power = h.Power.State + " (" + ago(h.Power.Since) + ")"
		}
		ret = h.Return
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.IP, h.Role, power, state, boot, prog, strings.ReplaceAll(res, "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ret != "" && ret != "idle" {
		fmt.Fprintf(e.stdout, "return plan after the outage: %s\n", ret)
	}
	return nil
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
