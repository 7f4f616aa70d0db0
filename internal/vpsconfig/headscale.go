package vpsconfig

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"gate/config"
)

// Tailnet ports of the gate's services (see internal/tailnet).
const (
	nutPort          = 3493
	metricsFirstPort = 9101
	metricsLastPort  = 9108
)

// HeadscalePath is where Headscale reads the policy Headscale renders
// (policy.mode: file, policy.path in headscale's config.yaml).
const HeadscalePath = "/etc/headscale/acl.hujson"

// Headscale renders a Headscale policy (HuJSON) for the gates of the
// sites whose tailnet control URL is not Tailscale's: the gate's tag is
// owned by group:gate-admins, whose members (to fill in) reach the ports
// of the services the gate offers and, with advertise_lan, the LAN, whose
// route is approved for the gate's tag. ok is false when no site names a
// Headscale.
func Headscale(sites []*config.Config) (text string, ok bool, err error) {
	var b strings.Builder
	var owners, acls, approvers []string
	for _, c := range sites {
		t := c.Tailnet
		if !t.Headscale() {
			continue
		}
		if len(t.Tags) == 0 {
			return "", false, fmt.Errorf("site %s: tailnet.tags is empty: the policy grants access to the gate by its tag (add tags: [\"tag:gate\"])", siteName(c))
		}
		if !ok {
			fmt.Fprintf(&b, "// gate vps-config: Headscale policy (%s; policy.mode: file).\n", HeadscalePath)
			b.WriteString("// Put the Headscale users who administer the sites in group:gate-admins, e.g. \"alice@\".\n")
		}
		ok = true
		fmt.Fprintf(&b, "// Site %s: gate %s at %s; its auth key: headscale preauthkeys create --user USER --tags %s\n",
			siteName(c), t.Hostname, t.ControlURL, strings.Join(t.Tags, ","))
		for _, tag := range t.Tags {
			owners = append(owners, fmt.Sprintf("    %q: [\"group:gate-admins\"],", tag))
		}
		var ports []string
		if t.Offers("bastion") {
			ports = append(ports, strconv.Itoa(c.Bastion.Port))
		}
		if t.Offers("nut") {
			ports = append(ports, strconv.Itoa(nutPort))
		}
		if t.Offers("status") && c.Status != nil {
			if _, p, err := net.SplitHostPort(c.Status.Listen); err == nil {
				ports = append(ports, p)
			}
		}
		if t.Offers("metrics") {
			ports = append(ports, fmt.Sprintf("%d-%d", metricsFirstPort, metricsLastPort))
		}
		if len(ports) > 0 {
			acls = append(acls, fmt.Sprintf("    {\"action\": \"accept\", \"src\": [\"group:gate-admins\"], \"dst\": [%q]},", t.Tags[0]+":"+strings.Join(ports, ",")))
		}
		if t.AdvertiseLAN {
			acls = append(acls, fmt.Sprintf("    // %s's LAN, straight (not through the bastion)\n    {\"action\": \"accept\", \"src\": [\"group:gate-admins\"], \"dst\": [%q]},", siteName(c), c.LAN.Subnet.String()+":*"))
			approvers = append(approvers, fmt.Sprintf("      %q: [%q],", c.LAN.Subnet.String(), t.Tags[0]))
		}
	}
	if !ok {
		return "", false, nil
	}
	if len(acls) == 0 {
		return "", false, errors.New("the sites' tailnets offer nothing (tailnet.services)")
	}
	b.WriteString("{\n  \"groups\": {\"group:gate-admins\": []},\n  \"tagOwners\": {\n")
	b.WriteString(strings.Join(owners, "\n") + "\n  },\n  \"acls\": [\n")
	b.WriteString(strings.Join(acls, "\n") + "\n  ],\n")
	if len(approvers) > 0 {
		b.WriteString("  \"autoApprovers\": {\n    \"routes\": {\n" + strings.Join(approvers, "\n") + "\n    },\n  },\n")
	}
	b.WriteString("}\n")
	return b.String(), true, nil
}
