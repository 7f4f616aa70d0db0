package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"gate/config"
	"gate/internal/atomicfile"
	"gate/internal/vpsconfig"
)

// siteFiles is a repeatable -c.
type siteFiles []string

func (s *siteFiles) String() string     { return strings.Join(*s, ",") }
func (s *siteFiles) Set(v string) error { *s = append(*s, v); return nil }

// cmdVPSConfig prints (or writes with -o) what the VPS hub needs to serve
// the sites named by -c.
func cmdVPSConfig(e *env, args []string) error {
	fs := newFlags(e, "vps-config", "[-c FILE]... [-i IFACE] [-o DIR] [HUB]")
	var files siteFiles
	fs.Var(&files, "c", "a site file served by the hub (repeat for several sites; default ./site.yaml)")
	iface := fs.String("i", "wg0", "the hub's WireGuard interface name")
	outDir := fs.String("o", "", "write the files into this directory instead of printing them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageError{"at most one HUB"}
	}
	if len(files) == 0 {
		files = siteFiles{defaultSite}
	}
	var sites []vpsconfig.Site
	var configs []*config.Config
	for _, f := range files {
		c, err := loadSite(e, f)
		if err != nil {
			return err
		}
		configs = append(configs, c)
	}
	// A site that names a Headscale also gets its policy; a site without
	// a vpn section then needs nothing else from the VPS.
	policy, headscale, err := vpsconfig.Headscale(configs)
	if err != nil {
		return err
	}
	for _, c := range configs {
		if c.VPN == nil && headscale {
			continue
		}
		s, err := hubSite(c)
		if err != nil {
			return err
		}
		sites = append(sites, s)
	}
	var paths []struct{ Path, Name, Text string }
	if len(sites) > 0 || !headscale {
		out, err := vpsconfig.Render(fs.Arg(0), *iface, sites)
		if err != nil {
			return err
		}
		paths = out.Paths()
	}
	if headscale {
		paths = append(paths, struct{ Path, Name, Text string }{vpsconfig.HeadscalePath, "acl.hujson", policy})
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return err
		}
		for _, p := range paths {
			dst := filepath.Join(*outDir, p.Name)
			if err := atomicfile.WriteFile(dst, []byte(p.Text), 0o600); err != nil {
				return fmt.Errorf("writing %s: %w", dst, err)
			}
			fmt.Fprintf(e.stdout, "%s\t(for %s)\n", dst, p.Path)
		}
		return nil
	}
	for i, p := range paths {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "### %s\n%s", p.Path, p.Text)
	}
	return nil
}

// hubSite reads what the hub needs from a site's secrets: the gate's
// WireGuard public key and the bastion's host key.
func hubSite(c *config.Config) (vpsconfig.Site, error) {
	s := vpsconfig.Site{Config: c}
	if c.VPN == nil {
		return s, fmt.Errorf("%s has no vpn section: no hub serves it", c.File)
	}
	priv, err := c.ReadSecret(c.VPN.PrivateKey)
	if err != nil {
		return s, fmt.Errorf("the gate's WireGuard key (vpn.private_key): %w (gate secrets init creates it)", err)
	}
	if s.GatePublicKey, err = config.WireGuardPublicKey(priv); err != nil {
		return s, fmt.Errorf("vpn.private_key %s: %w", c.VPN.PrivateKey, err)
	}
	if b := c.Bastion; b != nil {
		if s.BastionHostKey, err = hostKey(c, b.HostKey); err != nil {
			return s, fmt.Errorf("the bastion's host key (bastion.host_key): %w", err)
		}
	}
	return s, nil
}

// hostKey is the bastion's public host key: the NAME.pub file beside a
// file: secret, else derived from the private key.
func hostKey(c *config.Config, ref config.Secret) (string, error) {
	if name, ok := strings.CutPrefix(string(ref), "file:"); ok {
		b, err := os.ReadFile(filepath.Join(c.SecretsDir, name+".pub"))
		if err == nil {
			if _, _, _, _, err := ssh.ParseAuthorizedKey(b); err != nil {
				return "", fmt.Errorf("%s.pub: %v", name, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	priv, err := c.ReadSecret(ref)
	if err != nil {
		return "", fmt.Errorf("%w (gate secrets init creates it)", err)
	}
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("%s: %v", ref, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), nil
}
