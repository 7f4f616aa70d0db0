package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Apply replaces the table with the policy's, in one netlink batch: the
// old rules hold until the new ones are in.
func Apply(p Policy) error {
	c, t, err := dropTable()
	if err != nil {
		return err
	}
	t = c.AddTable(t)

	drop := nftables.ChainPolicyDrop
	accept := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	tun := c.AddChain(&nftables.Chain{Name: "tunnel", Table: t})
	rule := func(ch *nftables.Chain, e ...[]expr.Any) {
		var all []expr.Any
		for _, x := range e {
			all = append(all, x...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}

	if p.Tunnel != "" {
		// Before routing: the tunnel carries a hub's address or the
		// internet's, nothing else.
		for _, h := range p.Hubs {
			rule(pre, iif(p.Tunnel), saddrIn(netip.PrefixFrom(h, h.BitLen())), verdict(expr.VerdictAccept))
		}
		for _, pf := range NotInternet {
			rule(pre, iif(p.Tunnel), saddrIn(pf), counted(), verdict(expr.VerdictDrop))
		}
		for _, pf := range p.LAN {
			rule(pre, iif(p.Tunnel), saddrIn(pf), counted(), verdict(expr.VerdictDrop))
		}
	}

	rule(in, iif("lo"), verdict(expr.VerdictAccept))
	rule(in, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(in, ctState(expr.CtStateBitINVALID), verdict(expr.VerdictDrop))
	if p.Tunnel != "" {
		rule(in, iif(p.Tunnel), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: tun.Name}})
		for _, o := range p.TunnelOpen {
			rule(tun, dport(o), verdict(expr.VerdictAccept))
		}
		rule(tun, l4(unix.IPPROTO_ICMP), verdict(expr.VerdictAccept))
		rule(tun, l4(unix.IPPROTO_ICMPV6), verdict(expr.VerdictAccept))
		rule(tun, counted(), verdict(expr.VerdictDrop))
	}
	rule(in, l4(unix.IPPROTO_ICMP), verdict(expr.VerdictAccept))
	rule(in, l4(unix.IPPROTO_ICMPV6), verdict(expr.VerdictAccept)) // neighbour discovery
	for _, pf := range p.LAN {
		rule(in, saddrIn(pf), verdict(expr.VerdictAccept))
	}
	// DHCP clients without an address yet (bootstrapd's DHCP and PXE).
	for _, port := range []uint16{67, 4011} {
		rule(in, saddrIn(netip.MustParsePrefix("0.0.0.0/32")), dport(Port{"udp", port}), verdict(expr.VerdictAccept))
	}
	for _, o := range p.Public {
		rule(in, dport(o), verdict(expr.VerdictAccept))
	}
	rule(in, counted()) // what the policy drops
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", Table, err)
	}
	return nil
}

// Remove deletes the table (firewall.off).
func Remove() error {
	c, _, err := dropTable()
	if err != nil {
		return err
	}
	return c.Flush()
}

// dropTable starts a batch that deletes the table: adding then deleting
// it empties an existing table and is harmless for a missing one.
func dropTable() (*nftables.Conn, *nftables.Table, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}
	c.AddTable(t)
	c.DelTable(t)
	return c, t, nil
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func counted() []expr.Any { return []expr.Any{&expr.Counter{}} }

// iif matches the input interface's name.
func iif(name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// saddrIn matches a source address inside pf (its family only).
func saddrIn(pf netip.Prefix) []expr.Any {
	pf = pf.Masked()
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if pf.Addr().Is6() {
		proto, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	mask := make([]byte, n)
	for i := 0; i < pf.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pf.Addr().AsSlice()},
	}
}

// l4 matches the transport protocol.
func l4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// dport matches a TCP or UDP destination port.
func dport(p Port) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, p.Port)
	return append(l4(proto),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
	)
}

// ctState matches connections in any of the states.
func ctState(bits uint32) []expr.Any {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, bits)
	return []expr.Any{
		&expr.Ct{Register: 1, SourceRegister: false, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: b, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}
