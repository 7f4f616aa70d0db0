package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/ssh"

	"gate/internal/atomicfile"
)

// Secret is a reference to a secret value, never the value itself (unless
// written "inline:VALUE", which `gate check` warns about):
//
//	file:NAME   the file NAME in the site's secrets directory
//	env:VAR     the environment variable VAR
type Secret string

// Kinds of secrets, from the `secret:"..."` struct tag: what `gate secrets
// init` generates for a missing file.
const (
	KindWireGuard = "wireguard" // a WireGuard private key (base64); NAME.pub holds the public key
	KindSSHKey    = "sshkey"    // an OpenSSH ed25519 private key; NAME.pub holds the public key
	KindPassword  = "password"  // 24 random URL-safe characters
	KindTSIG      = "tsig"      // 32 random bytes, base64 (hmac-sha256)
	KindExternal  = "external"  // issued elsewhere (a provider's API token): never generated
)

var (
	secretNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// IsSet reports whether a reference was given.
func (s Secret) IsSet() bool { return s != "" }

// parse splits a reference and checks its form.
func (s Secret) parse() (scheme, name string, err error) {
	scheme, name, ok := strings.Cut(string(s), ":")
	if !ok {
		return "", "", fmt.Errorf("secret reference %q has no scheme (file:NAME in the secrets directory, or env:VAR)", s)
	}
	switch scheme {
	case "file":
		if !secretNameRE.MatchString(name) {
			return "", "", fmt.Errorf("secret file name %q is not a plain file name (letters, digits, . _ -; no slashes)", name)
		}
	case "env":
		if !envNameRE.MatchString(name) {
			return "", "", fmt.Errorf("environment variable name %q is malformed (letters, digits, _)", name)
		}
	case "inline":
	default:
		return "", "", fmt.Errorf("secret reference %q has unknown scheme %q (file: or env:)", s, scheme)
	}
	return scheme, name, nil
}

// ErrSecretMissing is wrapped by Read when a referenced file or variable
// does not exist.
var ErrSecretMissing = errors.New("secret missing")

// ReadSecret resolves a reference to its value, trimmed of surrounding
// white space (except for multi-line PEM keys, which are returned as is).
func (c *Config) ReadSecret(s Secret) ([]byte, error) {
	scheme, name, err := s.parse()
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "env":
		v, ok := os.LookupEnv(name)
		if !ok {
			return nil, fmt.Errorf("secret %s: %w: environment variable %s is not set", s, ErrSecretMissing, name)
		}
		return []byte(strings.TrimSpace(v)), nil
	case "inline":
		return []byte(name), nil
	}
	p := filepath.Join(c.SecretsDir, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secret %s: %w: no file %s", s, ErrSecretMissing, p)
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", s, err)
	}
	if strings.HasPrefix(string(b), "-----BEGIN") {
		return b, nil
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

// SecretRef is one secret reference found in a config.
type SecretRef struct {
	Path   string // e.g. "vpn.private_key"
	Ref    Secret
	Kind   string
	Scheme string
	Name   string // file or variable name
}

// SecretRefs lists every secret reference of the config in file order,
// each file name once.
func (c *Config) SecretRefs() []SecretRef {
	var refs []SecretRef
	seen := map[Secret]bool{}
	walkSecrets(reflect.ValueOf(c).Elem(), "", func(path string, s Secret, kind string) {
		if !s.IsSet() || seen[s] {
			return
		}
		seen[s] = true
		scheme, name, err := s.parse()
		if err != nil {
			return
		}
		refs = append(refs, SecretRef{Path: path, Ref: s, Kind: kind, Scheme: scheme, Name: name})
	})
	return refs
}

func walkSecrets(v reflect.Value, path string, fn func(string, Secret, string)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkSecrets(v.Elem(), path, fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" || !f.IsExported() {
				continue
			}
			p := joinPath(path, name)
			if f.Type == reflect.TypeOf(Secret("")) {
				fn(p, v.Field(i).Interface().(Secret), f.Tag.Get("secret"))
				continue
			}
			walkSecrets(v.Field(i), p, fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkSecrets(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			walkSecrets(v.MapIndex(k), joinPath(path, k.String()), fn)
		}
	}
}

// InitResult says what InitSecrets did with one reference.
type InitResult struct {
	Ref     SecretRef
	Created bool   // a new file was written
	Note    string // why nothing was written, or what to do next
}

// InitSecrets creates every missing file: secret that can be generated,
// with mode 0600 in a 0700 directory. It never overwrites an existing file.
func (c *Config) InitSecrets() ([]InitResult, error) {
	if err := os.MkdirAll(c.SecretsDir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets directory: %w", err)
	}
	var res []InitResult
	for _, r := range c.SecretRefs() {
		ir := InitResult{Ref: r}
		switch {
		case r.Scheme == "env":
			if _, ok := os.LookupEnv(r.Name); !ok {
				ir.Note = "environment variable " + r.Name + " is not set: set it where gate runs"
			} else {
				ir.Note = "from the environment"
			}
		case r.Scheme == "inline":
			ir.Note = "inline in the site file (move it to a file: secret)"
		default:
			p := filepath.Join(c.SecretsDir, r.Name)
			if _, err := os.Stat(p); err == nil {
				ir.Note = "exists, kept"
				break
			}
			if r.Kind == KindExternal || r.Kind == "" {
				ir.Note = "missing: it is issued elsewhere, write it to " + p
				break
			}
			files, err := generateSecret(r.Kind)
			if err != nil {
				return res, fmt.Errorf("generating %s (%s): %w", r.Name, r.Path, err)
			}
			for suffix, data := range files {
				perm := os.FileMode(0o600)
				if suffix != "" {
					perm = 0o644
					if _, err := os.Stat(p + suffix); err == nil {
						continue
					}
				}
				if err := atomicfile.WriteFile(p+suffix, data, perm); err != nil {
					return res, err
				}
			}
			ir.Created = true
			ir.Note = "created " + p
		}
		res = append(res, ir)
	}
	return res, nil
}

// generateSecret returns the files for a new secret of kind: "" is the
// secret itself, ".pub" its public half.
func generateSecret(kind string) (map[string][]byte, error) {
	switch kind {
	case KindWireGuard:
		var priv [32]byte
		if _, err := rand.Read(priv[:]); err != nil {
			return nil, err
		}
		priv[0] &= 248
		priv[31] = (priv[31] & 127) | 64
		pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{
			"":     []byte(base64.StdEncoding.EncodeToString(priv[:]) + "\n"),
			".pub": []byte(base64.StdEncoding.EncodeToString(pub) + "\n"),
		}, nil
	case KindSSHKey:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		blk, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			return nil, err
		}
		sshPub, err := ssh.NewPublicKey(pub)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{
			"":     pem.EncodeToMemory(blk),
			".pub": ssh.MarshalAuthorizedKey(sshPub),
		}, nil
	case KindPassword:
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return map[string][]byte{"": []byte(base64.RawURLEncoding.EncodeToString(b) + "\n")}, nil
	case KindTSIG:
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return map[string][]byte{"": []byte(base64.StdEncoding.EncodeToString(b) + "\n")}, nil
	}
	return nil, fmt.Errorf("secrets of kind %q are not generated", kind)
}

// WireGuardPublicKey derives the public key from a base64 private key.
func WireGuardPublicKey(privB64 []byte) (string, error) {
	priv, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(privB64)))
	if err != nil || len(priv) != 32 {
		return "", fmt.Errorf("malformed WireGuard private key (44 base64 characters)")
	}
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}
