// Package nocloud renders a host's cloud-init NoCloud files (meta-data,
// user-data, vendor-data, network-config) from its role's Go templates
// and the host's facts. Whatever the templates say, the user-data keeps
// what the site needs: the host name, the admins' SSH keys, the NUT
// secondary configuration and the phone-home callback that ends an
// install.
package nocloud

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"gate/internal/hostcmd"
)

// Facts are what templates see (as .Name, .IP, ...).
type Facts struct {
	Name       string
	Domain     string
	FQDN       string
	IP         string
	Prefix     int    // LAN prefix length
	Gateway    string // the LAN's router
	DNS        []string
	MACs       []string
	Role       string
	K3s        string // server, agent or ""
	Disk       string
	InstanceID string
	GateURL    string // http://<gate>:<port>
	GateIP     string
	SSHKeys    []string // authorized_keys lines of the admins
	// NUTMonitor is the upsmon MONITOR line for this host (MonitorLine;
	// "" when the host is not a NUT secondary of the gate).
	NUTMonitor string
	// GateKey is the authorized_keys line of the gate's shutdown key,
	// restricted to its forced command (hostcmd.AuthorizedKey), installed
	// for GateUser with the forced command allowing GateCommands ("": the
	// host gets no key).
	GateKey      string
	GateUser     string
	GateCommands []string
}

// MonitorLine is upsmon.conf's MONITOR line of a secondary of the gate's
// upsd at gate (an address), logged in as user.
func MonitorLine(ups, gate, user, password string) string {
	return fmt.Sprintf("MONITOR %s@%s 1 %s %s secondary", ups, gate, user, password)
}

// HostShutdownCmd is the SHUTDOWNCMD installed on the hosts.
const HostShutdownCmd = "/sbin/shutdown -h +0"

// UpsmonConf is the whole upsmon.conf a NUT secondary of the gate gets:
// its MONITOR line, shutdownCmd as SHUTDOWNCMD (HostShutdownCmd on the
// hosts; tests record the moment instead), and the settings the ordered
// shutdown needs:
//
//   - POLLFREQ 1, POLLFREQALERT 1: the gate shows FSD to a group when its
//     turn comes; the host sees it within a second (one short GET a
//     second per host on the LAN).
//   - FINALDELAY 0: the gate already warned and ordered; upsmon's default
//     5 s would only delay the host's shutdown and the next group.
//   - DEADTIME 30: the gate serves the last data while on battery, so
//     the UPS never goes stale for a secondary while the gate runs; if the
//     gate itself is gone while on battery, the host shuts itself down
//     after 30 s, which outlasts a restart of the gate's upsd.
//   - MINSUPPLIES 1: the one UPS feeds the host.
func UpsmonConf(monitor, shutdownCmd string) string {
	return monitor + "\n" + `MINSUPPLIES 1
SHUTDOWNCMD "` + shutdownCmd + `"
POLLFREQ 1
POLLFREQALERT 1
DEADTIME 30
FINALDELAY 0
`
}

// Templates are the role's templates; empty ones get defaults.
type Templates struct {
	UserData, VendorData, NetworkConfig string
}

// Files are the rendered NoCloud files.
type Files struct {
	MetaData, UserData, VendorData, NetworkConfig string
}

// Get returns a file by its NoCloud name.
func (f *Files) Get(name string) (string, bool) {
	switch name {
	case "meta-data":
		return f.MetaData, true
	case "user-data":
		return f.UserData, true
	case "vendor-data":
		return f.VendorData, true
	case "network-config":
		return f.NetworkConfig, true
	}
	return "", false
}

func render(name, text string, f *Facts) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"join": strings.Join,
	}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("nocloud: template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, f); err != nil {
		return "", fmt.Errorf("nocloud: template %s for %s: %w", name, f.Name, err)
	}
	return b.String(), nil
}

// Render renders the host's files.
func Render(t Templates, f *Facts) (*Files, error) {
	out := &Files{}
	md, err := yaml.Marshal(map[string]string{"instance-id": f.InstanceID, "local-hostname": f.Name})
	if err != nil {
		return nil, err
	}
	out.MetaData = string(md)

	ud := "#cloud-config\n"
	if t.UserData != "" {
		if ud, err = render("user_data", t.UserData, f); err != nil {
			return nil, err
		}
	}
	if out.UserData, err = completeUserData(ud, f); err != nil {
		return nil, err
	}
	if t.VendorData != "" {
		if out.VendorData, err = render("vendor_data", t.VendorData, f); err != nil {
			return nil, err
		}
	}
	if t.NetworkConfig != "" {
		if out.NetworkConfig, err = render("network_config", t.NetworkConfig, f); err != nil {
			return nil, err
		}
	} else {
		out.NetworkConfig = defaultNetwork(f)
	}
	return out, nil
}

// completeUserData adds the site's keys to a #cloud-config document.
func completeUserData(ud string, f *Facts) (string, error) {
	if !strings.HasPrefix(ud, "#cloud-config") {
		return "", fmt.Errorf("nocloud: user-data of %s does not start with #cloud-config", f.Name)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(ud), &doc); err != nil {
		return "", fmt.Errorf("nocloud: user-data of %s is not YAML: %w", f.Name, err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	if _, ok := doc["hostname"]; !ok {
		doc["hostname"] = f.Name
	}
	if _, ok := doc["fqdn"]; !ok && f.FQDN != "" {
		doc["fqdn"] = f.FQDN
	}
	if len(f.SSHKeys) > 0 {
		var keys []any
		if k, ok := doc["ssh_authorized_keys"].([]any); ok {
			keys = k
		}
		for _, k := range f.SSHKeys {
			keys = append(keys, k)
		}
		doc["ssh_authorized_keys"] = keys
	}
	if f.NUTMonitor != "" {
		doc["write_files"] = append(writeFiles(doc), map[string]any{
			"path":        "/etc/nut/upsmon.conf",
			"permissions": "0640",
			"content":     UpsmonConf(f.NUTMonitor, HostShutdownCmd),
		}, map[string]any{
			"path":    "/etc/nut/nut.conf",
			"content": "MODE=netclient\n",
		})
		// The files are written before packages are installed; cloud-init's
		// apt keeps them (--force-confold) and nut-client's postinst gives
		// upsmon.conf to root:nut, so upsmon starts as a secondary.
		var pkgs []any
		if p, ok := doc["packages"].([]any); ok {
			pkgs = p
		}
		if !slices.Contains(pkgs, any("nut-client")) {
			pkgs = append(pkgs, "nut-client")
		}
		doc["packages"] = pkgs
	}
	if f.GateKey != "" {
		doc["write_files"] = append(writeFiles(doc), gateKeyFiles(f)...)
	}
	doc["phone_home"] = map[string]any{
		"url":   f.GateURL + "/nocloud/phone-home",
		"post":  "all",
		"tries": 10,
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	return "#cloud-config\n" + string(b), nil
}

// writeFiles is the document's write_files list.
func writeFiles(doc map[string]any) []any {
	w, _ := doc["write_files"].([]any)
	return w
}

// gateKeyFiles install the gate's shutdown key for f.GateUser, appended to
// its authorized_keys, and the forced command that restricts it. A user
// other than root gets it once the user exists (cloud-init's deferred
// write_files, after users are made); its home is /home/USER.
func gateKeyFiles(f *Facts) []any {
	script := map[string]any{
		"path":        hostcmd.ScriptPath,
		"permissions": "0755",
		"content":     hostcmd.Script(f.GateCommands),
	}
	key := map[string]any{
		"path":        "/root/.ssh/authorized_keys",
		"permissions": "0600",
		"append":      true,
		"content":     f.GateKey + "\n",
	}
	if u := f.GateUser; u != "" && u != "root" {
		key["path"] = "/home/" + u + "/.ssh/authorized_keys"
		key["owner"] = u + ":" + u
		key["defer"] = true
	}
	return []any{script, key}
}

// defaultNetwork is network-config v2: DHCP on the host's NICs, matched by
// MAC (the box gives the reserved address).
func defaultNetwork(f *Facts) string {
	eth := map[string]any{}
	for i, m := range f.MACs {
		eth[fmt.Sprintf("nic%d", i)] = map[string]any{"match": map[string]any{"macaddress": strings.ToLower(m)}, "dhcp4": true}
	}
	b, _ := yaml.Marshal(map[string]any{"version": 2, "ethernets": eth})
	return string(b)
}
