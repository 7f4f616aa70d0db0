package mains

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gate/internal/lanroute"
)

// LANRoute runs lanroute beside gokrazy's DHCP client (gate.address
// dhcp): it puts the LAN's subnet route back when that client's race
// removed it (see internal/lanroute), until SIGTERM.
func LANRoute() {
	iface := flag.String("interface", "eth0", "the LAN interface (gokrazy's DHCP client's)")
	every := flag.Duration("every", 2*time.Second, "how often the route is checked")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("daemon", "lanroute")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("ready", "interface", *iface, "every", *every)
	lanroute.Watch(ctx, log, *iface, *every)
}
