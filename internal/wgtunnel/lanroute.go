package wgtunnel

import (
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// nftTable is the nftables table the tunnel owns (LAN routing).
const nftTable = "gate-vpn"

// ifnameData is an interface name as nftables compares it: NUL-padded to
// IFNAMSIZ.
func ifnameData(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

// enableLANRouting turns on IPv4 forwarding and masquerades what comes in
// from the tunnel and leaves by another interface, so that the hub reaches
// the LAN with the gate's LAN address as source (the LAN's hosts and the
// box need no route back to the tunnel).
func enableLANRouting(ifname string) error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	disableLANRouting() // a leftover of a crashed run
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	ch := c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(ifname)},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifnameData(ifname)},
		&expr.Masq{},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s (masquerade from %s): %w", nftTable, ifname, err)
	}
	return nil
}

// disableLANRouting removes the tunnel's nftables table if it exists. IP
// forwarding is left as it is (another daemon may need it).
func disableLANRouting() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Name == nftTable {
			c.DelTable(t)
			return c.Flush()
		}
	}
	return nil
}
