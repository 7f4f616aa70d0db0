package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"gate/config"
)

func cmdCheck(e *env, args []string) error {
	fs := newFlags(e, "check", "[-c FILE]")
	site := siteFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	c, err := loadSite(e, *site)
	if err != nil {
		var ie invalidError
		if errors.As(err, &ie) {
			fmt.Fprintln(e.stdout, ie.err.Error())
			return invalidError{fmt.Errorf("%s has problems (listed above)", *site)}
		}
		return err
	}
	summarize(e.stdout, c)
	for _, w := range c.Warnings() {
		fmt.Fprintln(e.stdout, w.String())
	}
	fmt.Fprintf(e.stdout, "\n%s: OK\n", c.File)
	return nil
}

// summarize prints what the gate will do for the site.
func summarize(w io.Writer, c *config.Config) {
	fmt.Fprintf(w, "site %s", c.Site.Name)
	if c.Site.Domain != "" {
		fmt.Fprintf(w, " (%s)", c.Site.Domain)
	}
	fmt.Fprintf(w, ", time zone %s\n", c.Site.Timezone)
	fmt.Fprintf(w, "LAN %s, box (gateway, DHCP) %s, DNS %s\n", c.LAN.Subnet, c.LAN.Gateway, joinAddrs(c.LAN.DNS))
	fmt.Fprintf(w, "gate %s (%s), address %s, secrets in %s\n\n", c.Gate.Hostname, c.Gate.Model, c.Gate.Address, c.SecretsDir)

	if len(c.Hosts) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tIP\tMAC\tROLE\tDISK\tSHUTDOWN")
		for _, h := range c.Hosts {
			var macs []string
			for _, m := range h.MACs {
				macs = append(macs, m.String())
			}
			how := h.Shutdown.Method
			if how == "nut" {
				how = "NUT secondary " + h.Shutdown.NUTUser
			} else {
				how = fmt.Sprintf("ssh %s@ %q", h.Shutdown.SSHUser, h.Shutdown.Command)
			}
			disk := h.Disk
			if disk == "" {
				disk = "(the only disk)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s: %s\n", h.Name, h.IP, strings.Join(macs, ","), h.Role, disk, h.Shutdown.Group, how)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "daemons:")
	if v := c.VPN; v != nil {
		for i, h := range v.Hubs {
			role := "primary hub"
			if i > 0 {
				role = fmt.Sprintf("failover hub %d", i)
			}
			lan := ""
			if h.RouteLAN {
				lan = ", routes the LAN to the hub"
			}
			fmt.Fprintf(w, "  vpn         %s %s at %s: gate %s, hub %s, MTU %d%s; bastion reachable at the hub's port %d\n",
				role, h.Name, h.Endpoint, h.GateAddress, h.HubAddress, h.MTU, lan, h.BastionPort)
		}
		fmt.Fprintf(w, "              keepalive %s, fails over after %s without a handshake\n", v.Keepalive.D(), v.FailAfter.D())
	} else {
		fmt.Fprintln(w, "  vpn         off (no vpn section)")
	}
	if d := c.DynDNS; d != nil {
		var srcs, recs []string
		for _, s := range d.Sources {
			srcs = append(srcs, s.Type)
		}
		for _, r := range d.Records {
			recs = append(recs, r.Name+" "+r.Type)
		}
		prov := d.Provider.Type
		if d.Provider.Preset != "" {
			prov += " (" + d.Provider.Preset + ")"
		}
		fmt.Fprintf(w, "  dyndns      keeps %s on the box's public address via %s, learned from %s (%s), every %s\n",
			strings.Join(recs, ", "), prov, strings.Join(srcs, ", "), d.Agree, d.Interval.D())
	} else {
		fmt.Fprintln(w, "  dyndns      off (no dyndns section)")
	}
	if u := c.UPS; u != nil {
		var groups []string
		for _, g := range u.Groups {
			var hs []string
			for _, h := range c.Hosts {
				if h.Shutdown.Group == g.Name {
					hs = append(hs, h.Name)
				}
			}
			groups = append(groups, fmt.Sprintf("%s [%s] within %s", g.Name, strings.Join(hs, " "), g.Timeout.D()))
		}
		var crit []string
		if *u.TrustLowBatt {
			crit = append(crit, "the UPS's low battery")
		}
		if u.Thresholds.Charge > 0 {
			crit = append(crit, fmt.Sprintf("charge < %d%%", u.Thresholds.Charge))
		}
		if u.Thresholds.Runtime > 0 {
			crit = append(crit, fmt.Sprintf("runtime < %s", u.Thresholds.Runtime.D()))
		}
		if u.Thresholds.OnBattery > 0 {
			crit = append(crit, fmt.Sprintf("%s on battery", u.Thresholds.OnBattery.D()))
		}
		fmt.Fprintf(w, "  upsd        watches UPS %q (%s), serves NUT on %s to %d user(s)\n", u.Name, u.Source, strings.Join(u.Listen, ","), len(u.Users))
		fmt.Fprintf(w, "              critical on: %s; then shuts down %s; then the UPS (off after %s, back on %s after mains returns)\n",
			strings.Join(crit, ", "), strings.Join(groups, ", then "), u.Delays.Shutdown.D(), u.Delays.Start.D())
	} else {
		fmt.Fprintln(w, "  upsd        off (no ups section)")
	}
	if b := c.Bootstrap; b != nil {
		var roles []string
		for name, r := range c.Roles {
			how := "installer"
			if r != nil && r.Image != nil {
				how = "image " + r.Image.Format
			}
			roles = append(roles, name+": "+how)
		}
		sort.Strings(roles)
		fmt.Fprintf(w, "  bootstrapd  PXE (%s DHCP) for %d host(s), HTTP on port %d; roles %s\n", b.DHCP, len(c.Hosts), b.HTTPPort, strings.Join(roles, ", "))
	} else {
		fmt.Fprintln(w, "  bootstrapd  off (no bootstrap section)")
	}
	if b := c.Bastion; b != nil {
		var us []string
		for _, u := range b.Users {
			us = append(us, fmt.Sprintf("%s (%d key(s) → %s)", u.Name, len(u.Keys), strings.Join(u.Allow, " ")))
		}
		var where []string
		if c.VPN != nil {
			where = append(where, "the tunnel")
		}
		if b.ListenLAN {
			where = append(where, "the LAN")
		}
		if c.Tailnet.Offers("bastion") {
			where = append(where, "the tailnet")
		}
		fmt.Fprintf(w, "  bastion     SSH jump host on port %d of %s for %s\n", b.Port, strings.Join(where, " and "), strings.Join(us, ", "))
	} else {
		fmt.Fprintln(w, "  bastion     off (no bastion section)")
	}
	statusPlan(w, c)
	summarizeTailnet(w, c)
	fmt.Fprintln(w)
}

// summarizeTailnet explains the gate's tailnet membership.
func summarizeTailnet(w io.Writer, c *config.Config) {
	t := c.Tailnet
	if t == nil {
		fmt.Fprintln(w, "  tailnet     off (no tailnet section)")
		return
	}
	control := "Tailscale"
	if t.Headscale() {
		control = "the Headscale at " + t.ControlURL
	}
	tags := ""
	if len(t.Tags) > 0 {
		tags = ", tags " + strings.Join(t.Tags, " ")
	}
	var offers []string
	for _, s := range t.Services {
		switch s {
		case "bastion":
			offers = append(offers, fmt.Sprintf("the bastion on port %d", c.Bastion.Port))
		case "nut":
			offers = append(offers, "NUT read-only (upsc) on port 3493")
		case "status":
			offers = append(offers, "the status page on "+c.Status.Listen)
		case "metrics":
			offers = append(offers, "the daemons' /metrics on ports 9101-9108")
		}
	}
	fmt.Fprintf(w, "  tailnet     node %s on %s%s (tsnet in userspace; node key in /perm/gate/tailnet, logs in with %s the first time)\n", t.Hostname, control, tags, t.AuthKey)
	if len(offers) > 0 {
		fmt.Fprintf(w, "              offers %s; nothing else\n", strings.Join(offers, ", "))
	}
	if t.AdvertiseLAN {
		fmt.Fprintf(w, "              advertises %s as a subnet route (once the control server approves it): the tailnet's ACL, not the bastion, then decides who reaches the LAN\n", c.LAN.Subnet)
	}
	if c.VPN != nil {
		fmt.Fprintln(w, "              beside the WireGuard hub(s): either path works without the other")
	} else {
		fmt.Fprintln(w, "              the only way in from outside (no vpn section)")
	}
}

func joinAddrs[T fmt.Stringer](as []T) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}
