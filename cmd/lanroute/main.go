// Command lanroute runs beside gokrazy's DHCP client (gate.address dhcp):
// it puts the LAN's subnet route back when that client's race removed it
// (see internal/lanroute), until SIGTERM. It is a binary of its own, not
// one of cmd/gated's names: it runs all the time on every DHCP site and
// needs none of the daemons' packages: alone it is about 6 MB resident on
// the Pi, where a program of cmd/gated is about 17.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gate/internal/console"
	"gate/internal/lanroute"
)

func main() {
	iface := flag.String("interface", "eth0", "the LAN interface (gokrazy's DHCP client's)")
	every := flag.Duration("every", 2*time.Second, "how often the route is checked")
	logConsole := flag.Bool("console", false, "also log to /dev/console (on the gate: gokrazy keeps only a ring buffer)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(console.Output(os.Stderr, *logConsole), nil)).With("daemon", "lanroute")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("ready", "interface", *iface, "every", *every)
	lanroute.Watch(ctx, log, *iface, *every)
}
