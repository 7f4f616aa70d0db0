package bastion

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"gate/config"
	"gate/internal/atomicfile"
)

// HostKey loads the host key the site file names (bastion.host_key). If a
// file: key is missing (a gate flashed without it), one is generated once
// into the secrets directory, atomically, and created reports true.
func HostKey(c *config.Config) (signer ssh.Signer, created bool, err error) {
	ref := c.Bastion.HostKey
	b, err := c.ReadSecret(ref)
	if errors.Is(err, config.ErrSecretMissing) && strings.HasPrefix(string(ref), "file:") {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, false, gerr
		}
		blk, gerr := ssh.MarshalPrivateKey(priv, "gate bastion")
		if gerr != nil {
			return nil, false, gerr
		}
		b = pem.EncodeToMemory(blk)
		path := filepath.Join(c.SecretsDir, strings.TrimPrefix(string(ref), "file:"))
		if werr := atomicfile.WriteFile(path, b, 0o600); werr != nil {
			return nil, false, werr
		}
		created, err = true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("bastion.host_key: %w", err)
	}
	signer, err = ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, false, fmt.Errorf("bastion.host_key: %v", err)
	}
	return signer, created, nil
}

// FromConfig builds the users and the host table of a site.
func FromConfig(c *config.Config) ([]User, error) {
	var users []User
	for _, bu := range c.Bastion.Users {
		u := User{Name: bu.Name}
		for _, k := range bu.Keys {
			u.Keys = append(u.Keys, k.PublicKey)
		}
		for _, a := range bu.Allow {
			r, err := ParseRule(a)
			if err != nil {
				return nil, err
			}
			u.Allow = append(u.Allow, r)
		}
		users = append(users, u)
	}
	return users, nil
}
