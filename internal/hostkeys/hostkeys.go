// Package hostkeys checks the SSH host keys of the site's servers for the
// gate's own SSH client (the shutdown plan's ssh steps): a key the site
// file gives (hosts[].shutdown.host_key) is the only one accepted;
// otherwise the first key a server shows is pinned in a known_hosts file
// on /perm (trust on first use) and any other key is refused from then
// on, as OpenSSH's StrictHostKeyChecking=accept-new does.
package hostkeys

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"gate/internal/atomicfile"
)

// Store is a known_hosts file of pinned keys.
type Store struct {
	// Path is the file (OpenSSH's known_hosts format), created on the
	// first pin.
	Path string
	mu   sync.Mutex
}

// Callback checks the key of the server at addr (host:port); pinned,
// when not nil, is the site file's key for it.
func (s *Store) Callback(pinned ssh.PublicKey) ssh.HostKeyCallback {
	return func(addr string, remote net.Addr, key ssh.PublicKey) error {
		if pinned != nil {
			if string(pinned.Marshal()) != string(key.Marshal()) {
				return fmt.Errorf("host %s shows the key %s, not the site file's %s (shutdown.host_key)", addr, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(pinned))
			}
			return nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		old, err := os.ReadFile(s.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pinned host keys: %w", err)
		}
		if len(old) > 0 {
			check, err := knownhosts.New(s.Path)
			if err != nil {
				return fmt.Errorf("pinned host keys %s: %w", s.Path, err)
			}
			err = check(addr, remote, key)
			var ke *knownhosts.KeyError
			switch {
			case err == nil:
				return nil
			case !errors.As(err, &ke):
				return err
			case len(ke.Want) > 0:
				return fmt.Errorf("host %s shows the key %s, not the one pinned at first use (%s in %s): if the server was reinstalled, remove its line there",
					addr, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(ke.Want[0].Key), s.Path)
			}
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
		if err := atomicfile.WriteFile(s.Path, append(old, line...), 0o600); err != nil {
			return fmt.Errorf("pinning the host key of %s: %w", addr, err)
		}
		return nil
	}
}
