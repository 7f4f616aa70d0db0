package pxe

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Pool is the full-DHCP mode (bootstrap.dhcp: full), for a LAN without
// another DHCP server: hosts of the site get their configured address,
// others one from [Start, End]. Leases live in memory: after a restart
// clients keep theirs by asking again (REQUEST of a free address is
// granted).
type Pool struct {
	Subnet     netip.Prefix
	Start, End netip.Addr
	Router     netip.Addr
	DNS        []netip.Addr
	Lease      time.Duration
	// Static returns a site host's address.
	Static func(mac net.HardwareAddr) (netip.Addr, bool)

	mu     sync.Mutex
	leases map[string]lease // by MAC
}

type lease struct {
	addr    netip.Addr
	expires time.Time
}

// addrFor returns the address of mac: static, its lease, want if free, or
// the first free one.
func (p *Pool) addrFor(mac net.HardwareAddr, want netip.Addr, now time.Time) (netip.Addr, error) {
	if p.Static != nil {
		if a, ok := p.Static(mac); ok {
			return a, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leases == nil {
		p.leases = map[string]lease{}
	}
	if l, ok := p.leases[mac.String()]; ok {
		return l.addr, nil
	}
	used := map[netip.Addr]bool{}
	for _, l := range p.leases {
		if now.Before(l.expires) {
			used[l.addr] = true
		}
	}
	inRange := func(a netip.Addr) bool { return a.IsValid() && p.Start.Compare(a) <= 0 && a.Compare(p.End) <= 0 }
	if inRange(want) && !used[want] {
		return want, nil
	}
	for a := p.Start; inRange(a); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pool %s-%s exhausted", p.Start, p.End)
}

func (p *Pool) commit(mac net.HardwareAddr, a netip.Addr, now time.Time) {
	if p.Static != nil {
		if _, ok := p.Static(mac); ok {
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.leases {
		if l.addr == a && k != mac.String() {
			delete(p.leases, k)
		}
	}
	p.leases[mac.String()] = lease{addr: a, expires: now.Add(p.Lease)}
}

// AnswerFull answers any client as the LAN's DHCP server; PXE clients of
// known MACs also get their boot file as in proxy mode.
func AnswerFull(c *Config, p *Pool, req *dhcpv4.DHCPv4, now time.Time) Decision {
	if req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) != 6 {
		return Decision{Reason: "not an Ethernet request"}
	}
	mt := req.MessageType()
	if mt != dhcpv4.MessageTypeDiscover && mt != dhcpv4.MessageTypeRequest {
		return Decision{Reason: fmt.Sprintf("message type %s", mt)}
	}
	want, _ := netip.AddrFromSlice(req.RequestedIPAddress().To4())
	if !want.IsValid() || want.IsUnspecified() {
		want, _ = netip.AddrFromSlice(req.ClientIPAddr.To4())
	}
	if want.IsUnspecified() {
		want = netip.Addr{}
	}
	if mt == dhcpv4.MessageTypeRequest {
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(c.Server) {
			return Decision{Reason: "REQUEST for another server"}
		}
	}
	a, err := p.addrFor(req.ClientHWAddr, want, now)
	if err != nil {
		return Decision{Reason: err.Error()}
	}
	reply, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithServerIP(c.Server),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(c.Server)))
	if err != nil {
		return Decision{Reason: err.Error()}
	}
	if mt == dhcpv4.MessageTypeRequest && want.IsValid() && want != a {
		reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
		return Decision{Reply: reply, Reason: fmt.Sprintf("NAK %s (yours is %s)", want, a)}
	}
	if mt == dhcpv4.MessageTypeDiscover {
		reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
	} else {
		reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck))
		p.commit(req.ClientHWAddr, a, now)
	}
	reply.YourIPAddr = a.AsSlice()
	reply.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(p.Subnet.Bits(), 32)))
	reply.UpdateOption(dhcpv4.OptIPAddressLeaseTime(p.Lease))
	if p.Router.IsValid() {
		reply.UpdateOption(dhcpv4.OptRouter(p.Router.AsSlice()))
	}
	if len(p.DNS) > 0 {
		var ips []net.IP
		for _, d := range p.DNS {
			ips = append(ips, d.AsSlice())
		}
		reply.UpdateOption(dhcpv4.OptDNS(ips...))
	}
	file := ""
	if d := Answer(c, req); d.Reply != nil {
		file = d.File
		reply.BootFileName = file
		reply.UpdateOption(dhcpv4.OptClassIdentifier(d.Reply.ClassIdentifier()))
		if o := d.Reply.GetOneOption(dhcpv4.GenericOptionCode(optPXEVendor)); o != nil {
			reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optPXEVendor), o))
		}
	}
	return Decision{Reply: reply, File: file, Reason: "address " + a.String()}
}
