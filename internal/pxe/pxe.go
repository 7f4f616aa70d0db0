// Package pxe answers PXE clients beside the site's own DHCP server
// (proxyDHCP, on ports 67 and 4011): only machines whose MAC the site
// knows get an answer, telling them which iPXE binary to fetch by TFTP
// for their architecture (option 93), or, once iPXE runs (user class
// "iPXE" or option 175), the URL of their iPXE script. UEFI HTTP boot
// clients (class HTTPClient) get a URL directly. Addresses stay the ISP
// box's business.
package pxe

import (
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Client architectures (option 93, RFC 4578 and IANA).
const (
	ArchBIOS          = 0
	ArchEFIIA32       = 6
	ArchEFIx64        = 7
	ArchEFIBC         = 9 // old firmware's x64
	ArchEFIARM32      = 10
	ArchEFIARM64      = 11
	ArchEFIx86HTTP    = 15
	ArchEFIx64HTTP    = 16
	ArchEFIARM32HTTP  = 18
	ArchEFIARM64HTTP  = 19
	optIPXEEncap      = 175
	optPXEVendor      = 43
	optClientGUID     = 97
	pxeDiscoveryCtrl  = 6
	skipBootDiscovery = 0x08
)

// Config is what answers are made of.
type Config struct {
	// Server is the gate's LAN address (siaddr, option 54, TFTP server).
	Server net.IP
	// HTTPBase is "http://<gate>:<port>".
	HTTPBase string
	// Known reports whether a MAC belongs to a host of the site.
	Known func(mac net.HardwareAddr) bool
}

// Boot files for each architecture, relative to the TFTP root and under
// /assets/ipxe/ over HTTP.
var bootFiles = map[uint16]string{
	ArchBIOS:    "undionly.kpxe",
	ArchEFIIA32: "", // no binary shipped
	ArchEFIx64:  "snponly.efi",
	ArchEFIBC:   "snponly.efi",
}

// Decision explains what was answered and why (for logs and tests).
type Decision struct {
	Reply  *dhcpv4.DHCPv4 // nil: ignore the request
	Reason string
	File   string
}

// IsIPXE reports whether a request comes from iPXE itself.
func IsIPXE(req *dhcpv4.DHCPv4) bool {
	if req.Options.Has(dhcpv4.GenericOptionCode(optIPXEEncap)) {
		return true
	}
	uc := req.GetOneOption(dhcpv4.OptionUserClassInformation)
	return strings.Contains(string(uc), "iPXE")
}

// ScriptURL is the per-host iPXE script URL the gate serves.
func ScriptURL(base string, mac net.HardwareAddr) string {
	return base + "/ipxe/" + strings.ReplaceAll(mac.String(), ":", "-")
}

// AnswerOn67 decides the reply to a request received on port 67 beside
// the LAN's DHCP server: a DISCOVER gets a proxy OFFER; a REQUEST is that
// server's business (it names it in option 54, or renews a lease) and is
// answered only when option 54 names the gate, as dnsmasq's proxy does.
func AnswerOn67(c *Config, req *dhcpv4.DHCPv4) Decision {
	if req.MessageType() == dhcpv4.MessageTypeRequest {
		if sid := req.ServerIdentifier(); sid == nil || !sid.Equal(c.Server) {
			return Decision{Reason: fmt.Sprintf("request on port 67 for server %v", sid)}
		}
	}
	return Answer(c, req)
}

// Answer decides the reply to a request received on port 67 (DISCOVER →
// OFFER; see AnswerOn67) or 4011 (REQUEST → ACK).
func Answer(c *Config, req *dhcpv4.DHCPv4) Decision {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return Decision{Reason: "not a request"}
	}
	if len(req.ClientHWAddr) != 6 {
		return Decision{Reason: "not an Ethernet client"}
	}
	var replyType dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		replyType = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		replyType = dhcpv4.MessageTypeAck
		// RFC 2131 4.3.2: a server not named in option 54 stays silent.
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(c.Server) {
			return Decision{Reason: "request for server " + sid.String()}
		}
	default:
		return Decision{Reason: fmt.Sprintf("message type %s", req.MessageType())}
	}
	class := req.ClassIdentifier()
	httpClient := strings.HasPrefix(class, "HTTPClient")
	if !strings.HasPrefix(class, "PXEClient") && !httpClient {
		return Decision{Reason: "not a PXE client"}
	}
	if c.Known == nil || !c.Known(req.ClientHWAddr) {
		return Decision{Reason: "unknown MAC " + req.ClientHWAddr.String()}
	}
	arch := uint16(0xffff)
	if a := req.ClientArch(); len(a) > 0 {
		arch = uint16(a[0])
	} else if !httpClient {
		arch = ArchBIOS // option 93 is mandatory for PXE; old ROMs omit it
	}
	var file string
	switch {
	case IsIPXE(req):
		file = ScriptURL(c.HTTPBase, req.ClientHWAddr)
	case httpClient:
		switch arch {
		case ArchEFIx64HTTP, ArchEFIx64, ArchEFIBC:
			file = c.HTTPBase + "/assets/ipxe/snponly.efi"
		default:
			return Decision{Reason: fmt.Sprintf("no HTTP boot binary for arch %d", arch)}
		}
	default:
		f, ok := bootFiles[arch]
		if !ok || f == "" {
			return Decision{Reason: fmt.Sprintf("no iPXE binary for arch %d", arch)}
		}
		file = f
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(replyType),
		dhcpv4.WithServerIP(c.Server),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(c.Server)),
		dhcpv4.WithYourIP(net.IPv4zero),
	}
	if httpClient {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient")))
	} else {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optPXEVendor), []byte{pxeDiscoveryCtrl, 1, skipBootDiscovery, 255})))
	}
	if g := req.GetOneOption(dhcpv4.GenericOptionCode(optClientGUID)); g != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optClientGUID), g)))
	}
	reply, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return Decision{Reason: "building reply: " + err.Error()}
	}
	reply.BootFileName = file
	return Decision{Reply: reply, File: file, Reason: fmt.Sprintf("arch %d", arch)}
}
