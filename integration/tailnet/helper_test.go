package tailnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tailscale.com/ipn"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/tailcfg"
	"tailscale.com/tsnet"
	"tailscale.com/tstest/integration"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/logger"
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
	derpMap := integration.RunDERPAndSTUN(t, logger.Discard, addr)
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
