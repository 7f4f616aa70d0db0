package mains

import (
	"context"
	"flag"
	"io"
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
	console := flag.Bool("console", false, "also log to /dev/console (on the gate: gokrazy keeps only a ring buffer)")
	flag.Parse()
	var out io.Writer = os.Stderr
	if *console {
		if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
			out = io.MultiWriter(os.Stderr, c)
		}
	}
	log := slog.New(slog.NewTextHandler(out, nil)).With("daemon", "lanroute")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("ready", "interface", *iface, "every", *every)
	lanroute.Watch(ctx, log, *iface, *every)
}
