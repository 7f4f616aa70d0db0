package wgtunnel

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestDecide(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const fail = 30 * time.Second
	never := time.Time{}
	tests := []struct {
		name   string
		active int
		since  time.Time
		heard  []time.Time
		want   int
	}{
		{"healthy first hub stays", 0, ago(time.Hour), []time.Time{ago(time.Second), never}, 0},
		{"just started, nothing heard yet", 0, ago(10 * time.Second), []time.Time{never, never}, 0},
		{"silent first hub: next", 0, ago(time.Hour), []time.Time{ago(31 * time.Second), never}, 1},
		{"never heard since start: next", 0, ago(31 * time.Second), []time.Time{never, never}, 1},
		{"silent: a live hub is preferred over the next", 0, ago(time.Hour), []time.Time{ago(time.Minute), never, ago(time.Second)}, 2},
		{"new hub gets its own window", 1, ago(5 * time.Second), []time.Time{ago(time.Minute), never}, 1},
		{"second hub silent too: wrap to the first", 1, ago(time.Minute), []time.Time{ago(2 * time.Minute), ago(40 * time.Second)}, 0},
		{"preferred hub answers again", 1, ago(time.Minute), []time.Time{ago(time.Second), ago(time.Second)}, 0},
		{"preferred still silent", 1, ago(time.Minute), []time.Time{ago(time.Minute), ago(time.Second)}, 1},
		{"single hub never switches", 0, ago(time.Hour), []time.Time{ago(time.Hour)}, 0},
		{"third active, second answers", 2, ago(time.Minute), []time.Time{ago(time.Hour), ago(2 * time.Second), ago(time.Second)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v []hubView
			for _, h := range tt.heard {
				v = append(v, hubView{heard: h})
			}
			got, reason := decide(now, tt.active, tt.since, v, fail)
			if got != tt.want {
				t.Errorf("decide = %d (%s), want %d", got, reason, tt.want)
			}
			if (got != tt.active) != (reason != "") {
				t.Errorf("reason %q for a switch %d->%d", reason, tt.active, got)
			}
		})
	}
}

func TestUAPIRoundTrip(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	pub := priv.PublicKey()
	ka := 25 * time.Second
	port := 51820
	_, n, _ := net.ParseCIDR("10.99.0.0/24")
	c := wgtypes.Config{PrivateKey: &priv, ListenPort: &port, ReplacePeers: true, Peers: []wgtypes.PeerConfig{
		{PublicKey: pub, Endpoint: &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 51820}, PersistentKeepaliveInterval: &ka, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{*n}},
		{PublicKey: priv, Remove: true},
	}}
	s := encodeUAPI(c)
	for _, w := range []string{"listen_port=51820\n", "replace_peers=true\n", "endpoint=198.51.100.7:51820\n", "persistent_keepalive_interval=25\n", "allowed_ip=10.99.0.0/24\n", "remove=true\n"} {
		if !strings.Contains(s, w) {
			t.Errorf("encoded config lacks %q:\n%s", w, s)
		}
	}
	get := "private_key=" + strings.Repeat("ab", 32) + "\nlisten_port=51820\npublic_key=" + strings.TrimPrefix(strings.Split(s, "\n")[3], "public_key=") +
		"\nprotocol_version=1\nendpoint=198.51.100.7:51820\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=25\nallowed_ip=10.99.0.0/24\n" +
		"public_key=" + strings.Repeat("cd", 32) + "\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\nerrno=0\n"
	peers, err := parseUAPI(get)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Fatalf("%d peers, want 2", len(peers))
	}
	p := peers[0]
	if p.PublicKey != pub || p.Endpoint.String() != "198.51.100.7:51820" || p.ReceiveBytes != 20 || p.TransmitBytes != 10 ||
		!p.LastHandshakeTime.Equal(time.Unix(1700000000, 5)) || p.PersistentKeepaliveInterval != ka || len(p.AllowedIPs) != 1 {
		t.Errorf("peer 0 = %+v", p)
	}
	if !peers[1].LastHandshakeTime.IsZero() {
		t.Errorf("never-handshaked peer has handshake time %v", peers[1].LastHandshakeTime)
	}
	for _, bad := range []string{"public_key=zz\n", "public_key=" + strings.Repeat("ab", 32) + "\nrx_bytes=x\n", "garbage\n", "errno=22\n"} {
		if _, err := parseUAPI(bad); err == nil {
			t.Errorf("parseUAPI(%q): no error", bad)
		}
	}
}

func FuzzParseUAPI(f *testing.F) {
	f.Add("public_key=" + strings.Repeat("ab", 32) + "\nendpoint=[2001:db8::1]:51820\nrx_bytes=1\nallowed_ip=10.0.0.0/8\n")
	f.Add("errno=0\n")
	f.Add("listen_port=1\npublic_key=00\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseUAPI(s)
	})
}
