// Package mains holds the gate daemons' mains, so that one binary can hold
// them all: cmd/<name> runs one of them, cmd/gated runs the one its name
// says (the image links /user/<name> to /user/gated, which saves the
// Go runtime and the shared libraries four times over in the root file
// system). Each main parses its flags, loads the site file and runs
// until SIGTERM, see internal/daemon.
package mains

// Names lists the daemons in the order the image starts them.
func Names() []string {
	names := []string{"firewall", "vpn", "dyndns", "upsd", "bootstrapd", "bastion", "statusd"}
	if _, ok := tailnetMain(); ok {
		names = append(names, "tailnet")
	}
	return names
}

// Lookup returns the main of the daemon called name, or of staticip (the
// gate's static address, a gokrazy system program) or of clock (the
// gate's time, always started). tailnet is there only in builds with the
// tailnet tag.
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
	case "statusd":
		return Statusd, true
	case "tailnet":
		return tailnetMain()
	case "staticip":
		return StaticIP, true
	case "clock":
		return Clock, true
	}
	return nil, false
}
