// Package mains holds the gate daemons' mains, so that one binary can hold
// them all: cmd/<name> runs one of them, cmd/gated runs the one its name
// says (the image links /user/<name> to /user/gated, which saves the
// Go runtime and the shared libraries four times over in the root file
// system). Each main parses its flags, loads the site file and runs
// until SIGTERM, see internal/daemon.
package mains

// Names lists the daemons in the order the image starts them.
func Names() []string {
	return []string{"firewall", "vpn", "dyndns", "upsd", "bootstrapd", "bastion"}
}

// Lookup returns the main of the daemon called name, or of staticip (the
// gate's static address, a gokrazy system program).
func Lookup(name string) (main func(), ok bool) {
	switch name {
	case "firewall":
		return Firewall, true
	case "vpn":
		return VPN, true
	case "dyndns":
		return DynDNS, true
	case "upsd":
		return UPSD, true
	case "bootstrapd":
		return Bootstrapd, true
	case "bastion":
		return Bastion, true
	case "staticip":
		return StaticIP, true
	}
	return nil, false
}
