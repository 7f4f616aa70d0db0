package mains

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"gate/internal/bastion"
	"gate/internal/daemon"
)

// Bastion runs the bastion daemon, the gate's SSH jump host: admins reach the site's
// servers with `ssh -J admin@<vps>:2222 ceph-1`. It listens on the gate's
// tunnel addresses (and on the LAN if bastion.listen_lan), see
// internal/bastion.
func Bastion() {
	daemon.Main("bastion", daemon.MetricsBastion, runBastion)
}

func runBastion(ctx context.Context, d *daemon.Daemon) error {
	c := d.Config
	if c.Bastion == nil {
		return daemon.ErrDisabled
	}
	srv, key, audit, err := bastion.FromSite(c, d.StateDir, d.Log, d.Registry, nil)
	if err != nil {
		return err
	}
	defer audit.Close()
	users := c.Bastion.Users

	addrs := bastion.ListenAddrs(c)
	if len(addrs) == 0 {
		// Only the tailnet offers it: cmd/tailnet serves it there.
		d.Log.Info("no address to listen on: the bastion is served on the tailnet only, by the tailnet daemon")
		return daemon.ErrDisabled
	}
	// The tunnel addresses may not exist yet (the tunnel is down, or vpn
	// has not started): IP_FREEBIND (IPV6_FREEBIND) binds them anyway.
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	errc := make(chan error, len(addrs))
	for _, a := range addrs {
		ln, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", a, err)
		}
		go func() { errc <- srv.Serve(ctx, ln) }()
	}
	d.Ready("listen", strings.Join(addrs, ","), "users", len(users), "host_key", ssh.FingerprintSHA256(key.PublicKey()))
	for range addrs {
		if err := <-errc; err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}
