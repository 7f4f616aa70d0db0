package wgtunnel

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// encodeUAPI renders a device configuration in the text format of
// WireGuard's cross-platform userspace API (the "set=1" body): keys in
// hex, one key=value per line, peers introduced by public_key.
func encodeUAPI(c wgtypes.Config) string {
	var b strings.Builder
	if c.PrivateKey != nil {
		fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(c.PrivateKey[:]))
	}
	if c.ListenPort != nil {
		fmt.Fprintf(&b, "listen_port=%d\n", *c.ListenPort)
	}
	if c.ReplacePeers {
		b.WriteString("replace_peers=true\n")
	}
	for _, p := range c.Peers {
		fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(p.PublicKey[:]))
		if p.Remove {
			b.WriteString("remove=true\n")
			continue
		}
		if p.UpdateOnly {
			b.WriteString("update_only=true\n")
		}
		if p.Endpoint != nil {
			ap := p.Endpoint.AddrPort()
			fmt.Fprintf(&b, "endpoint=%s\n", netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		if p.PersistentKeepaliveInterval != nil {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.PersistentKeepaliveInterval.Seconds()))
		}
		if p.ReplaceAllowedIPs {
			b.WriteString("replace_allowed_ips=true\n")
		}
		for _, n := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", n.String())
		}
	}
	return b.String()
}

// parseUAPI reads the answer to a UAPI "get=1": the peers and their
// counters. Unknown keys are ignored (newer versions add some).
func parseUAPI(s string) ([]wgtypes.Peer, error) {
	var (
		peers []wgtypes.Peer
		cur   *wgtypes.Peer
		sec   int64
		nsec  int64
	)
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.LastHandshakeTime = time.Unix(sec, nsec)
			}
			peers = append(peers, *cur)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		key, val, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("uapi line %d %q: no '='", line, text)
		}
		if key == "errno" {
			if val != "0" {
				return nil, fmt.Errorf("uapi: device answered errno=%s", val)
			}
			continue
		}
		if key == "public_key" {
			flush()
			k, err := hexKey(val)
			if err != nil {
				return nil, fmt.Errorf("uapi line %d: public_key: %v", line, err)
			}
			cur = &wgtypes.Peer{PublicKey: k}
			continue
		}
		if cur == nil {
			continue // device-level keys: private_key, listen_port, fwmark
		}
		var err error
		switch key {
		case "endpoint":
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(val)
			if err == nil {
				cur.Endpoint = net.UDPAddrFromAddrPort(ap)
			}
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(val, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(val, 10, 64)
		case "tx_bytes":
			cur.TransmitBytes, err = strconv.ParseInt(val, 10, 64)
		case "rx_bytes":
			cur.ReceiveBytes, err = strconv.ParseInt(val, 10, 64)
		case "persistent_keepalive_interval":
			var n int64
			n, err = strconv.ParseInt(val, 10, 32)
			cur.PersistentKeepaliveInterval = time.Duration(n) * time.Second
		case "allowed_ip":
			var p netip.Prefix
			p, err = netip.ParsePrefix(val)
			if err == nil {
				cur.AllowedIPs = append(cur.AllowedIPs, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("uapi line %d: %s=%q: %v", line, key, val, err)
		}
	}
	flush()
	return peers, sc.Err()
}

func hexKey(s string) (wgtypes.Key, error) {
	var k wgtypes.Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("malformed key %q (64 hex digits)", s)
	}
	copy(k[:], b)
	return k, nil
}
