package bastion

import (
	"log/slog"
	"net/netip"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"gate/config"
	"gate/internal/metrics"
)

// FromSite builds the bastion the site file describes (its host key,
// users, hosts and ban settings), with its audit log in stateDir and its
// metrics in reg; identify, if not nil, is Config.Identify. Both the
// bastion daemon and the tailnet daemon serve it. The caller closes the
// audit log.
func FromSite(c *config.Config, stateDir string, log *slog.Logger, reg *metrics.Registry, identify func(string) string) (*Server, ssh.Signer, *AuditLog, error) {
	key, created, err := HostKey(c)
	if err != nil {
		return nil, nil, nil, err
	}
	if created {
		log.Warn("host key generated (none was provisioned)", "fingerprint", ssh.FingerprintSHA256(key.PublicKey()))
	}
	users, err := FromConfig(c)
	if err != nil {
		return nil, nil, nil, err
	}
	hosts := map[string]netip.Addr{}
	for _, h := range c.Hosts {
		hosts[h.Name] = h.IP
	}
	// The audit trail on /perm: one JSON line per channel, at most 2×16 MiB.
	audit, err := OpenAuditLog(filepath.Join(stateDir, "audit.log"), 16<<20)
	if err != nil {
		return nil, nil, nil, err
	}
	m := NewMetrics()
	m.Register(reg)
	srv, err := New(Config{
		HostKey: key, Users: users, Hosts: hosts, IdleTimeout: c.Bastion.IdleTimeout.D(),
		BanAfter: c.Bastion.BanAfter, BanFor: c.Bastion.BanFor.D(),
		Log: log, Audit: audit, Metrics: m, Identify: identify,
	})
	if err != nil {
		audit.Close()
		return nil, nil, nil, err
	}
	return srv, key, audit, nil
}
