package tailnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/ipn"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/net/stun/stuntest"
	"tailscale.com/tailcfg"
	"tailscale.com/tsnet"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
	"tailscale.com/types/nettype"
)

// The peers of these tests that are Go programs of the tailscale.com
// module (Tailscale's own test control server with a DERP and STUN server,
// and the admin's tsnet node) run as this test binary started again inside
// a namespace of the lab, with TAILNET_HELPER naming the role. They run
// until SIGTERM (netlab stops them at teardown).
const helperEnv = "TAILNET_HELPER"

// TestHelperProcess is not a test: it is a lab peer when TAILNET_HELPER
// is set, and skips otherwise.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "control":
		runControl(t)
	case "admin":
		runAdmin(t)
	default:
		t.Skip("a lab peer, run by the integration tests")
	}
}

func untilSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

// runControl serves testcontrol on CONTROL_ADDR:8080 with a DERP (TLS)
// and STUN server on the same address, requiring the auth key AUTH_KEY;
// it approves every subnet route a node advertises.
func runControl(t *testing.T) {
	addr := os.Getenv("CONTROL_ADDR")
	netns.SetEnabled(false)
	derpMap := runDERPAndSTUN(t, addr)
	control := &testcontrol.Server{
		DERPMap:         derpMap,
		DNSConfig:       &tailcfg.DNSConfig{Proxied: true},
		MagicDNSDomain:  "tail.test",
		RequireAuthKey:  os.Getenv("AUTH_KEY"),
		ExplicitBaseURL: "http://" + net.JoinHostPort(addr, "8080"),
		AllOnline:       true,
		Logf:            logger.Discard,
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: control}
	go srv.Serve(ln)
	go func() {
		for {
			time.Sleep(500 * time.Millisecond)
			for _, n := range control.AllNodes() {
				if r := n.Hostinfo.RoutableIPs(); r.Len() > 0 && len(n.PrimaryRoutes) != r.Len() {
					control.SetSubnetRoutes(n.Key, r.AsSlice())
				}
			}
		}
	}()
	fmt.Println("control ready", control.ExplicitBaseURL)
	untilSignal()
	srv.Close()
}

// runAdmin joins CONTROL_URL as the admin's laptop (an ephemeral tsnet
// node) and relays FORWARDS, "local=tailnet" pairs separated by commas:
// each connection to local (in the admin's namespace) is dialled to the
// tailnet address through the node, like a `tailscale nc` ProxyCommand.
func runAdmin(t *testing.T) {
	netns.SetEnabled(false)
	dir := t.TempDir()
	s := &tsnet.Server{Dir: filepath.Join(dir, "laptop"), ControlURL: os.Getenv("CONTROL_URL"), AuthKey: os.Getenv("AUTH_KEY"),
		Hostname: "laptop", Ephemeral: true, Store: new(mem.Store)}
	if os.Getenv("TSNET_VERBOSE") != "" {
		s.Logf = t.Logf
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	st, err := s.Up(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	lc, _ := s.LocalClient()
	if _, err := lc.EditPrefs(context.Background(), &ipn.MaskedPrefs{RouteAllSet: true, Prefs: ipn.Prefs{RouteAll: true}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(os.Getenv("FORWARDS"), ",") {
		local, remote, _ := strings.Cut(f, "=")
		ln, err := net.Listen("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					up, err := s.Dial(ctx, "tcp", remote)
					cancel()
					if err != nil {
						fmt.Println("admin: dial", remote, err)
						return
					}
					defer up.Close()
					go func() { io.Copy(up, c); up.Close() }()
					io.Copy(c, up)
				}()
			}
		}()
	}
	fmt.Println("admin ready", st.TailscaleIPs)
	untilSignal()
}

// runDERPAndSTUN serves a DERP server (HTTPS, self-signed: the DERP map
// says InsecureForTests) and a STUN server on addr, and returns the DERP
// map naming them.
func runDERPAndSTUN(t *testing.T, addr string) *tailcfg.DERPMap {
	d := derpserver.New(key.NewNode(), logger.Discard)
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(derpserver.Handler(d))
	hs.Listener.Close()
	hs.Listener = ln
	hs.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	hs.StartTLS()
	stunAddr, _ := stuntest.ServeWithPacketListener(t, nettype.Std{})
	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{1: {
		RegionID: 1, RegionCode: "lab",
		Nodes: []*tailcfg.DERPNode{{
			Name: "lab1", RegionID: 1, HostName: addr, IPv4: addr, IPv6: "none",
			STUNPort: stunAddr.Port, DERPPort: ln.Addr().(*net.TCPAddr).Port,
			InsecureForTests: true, STUNTestIP: addr,
		}},
	}}}
}
