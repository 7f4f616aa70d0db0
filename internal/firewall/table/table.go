// Package table names the nftables table of the gate's firewall policy
// and tells whether it is in the kernel; the daemons wait for it before
// they listen (internal/daemon), without linking the firewall itself.
package table

import (
	"fmt"

	"github.com/google/nftables"
)

// Name is the table the policy owns (family inet).
const Name = "gate-firewall"

// Present reports whether the table is in the kernel. internal/firewall
// sets the whole policy in one batch, so a table present is the whole
// policy.
func Present() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: listing the inet tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == Name {
			return true, nil
		}
	}
	return false, nil
}
