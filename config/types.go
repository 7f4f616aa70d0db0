package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Duration is a time.Duration written as "90s", "5m", "1h30m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("malformed duration %q (a number with a unit, e.g. 30s, 5m, 1h)", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q (zero or more)", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// MAC is an Ethernet address.
type MAC net.HardwareAddr

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	hw, err := net.ParseMAC(string(b))
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("malformed MAC %q (six hex pairs, e.g. 52:54:00:12:34:56)", b)
	}
	*m = MAC(hw)
	return nil
}

// String is the lowercase colon form.
func (m MAC) String() string { return net.HardwareAddr(m).String() }

// WGKey is a WireGuard public key (32 bytes, base64 in the file).
type WGKey [32]byte

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *WGKey) UnmarshalText(b []byte) error {
	raw, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("malformed WireGuard key %q (44 base64 characters, as printed by wg pubkey)", b)
	}
	copy(k[:], raw)
	return nil
}

// String is the base64 form.
func (k WGKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether the key is unset.
func (k WGKey) IsZero() bool { return k == WGKey{} }

// PublicKey is an SSH public key in authorized_keys form.
type PublicKey struct {
	ssh.PublicKey
	Comment string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PublicKey) UnmarshalText(b []byte) error {
	pk, comment, _, rest, err := ssh.ParseAuthorizedKey(b)
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return fmt.Errorf("malformed SSH public key %.40q (one authorized_keys line: ssh-ed25519 AAAA... comment)", b)
	}
	k.PublicKey, k.Comment = pk, comment
	return nil
}

// String is the authorized_keys form.
func (k PublicKey) String() string {
	if k.PublicKey == nil {
		return ""
	}
	s := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey)))
	if k.Comment != "" {
		s += " " + k.Comment
	}
	return s
}
