package daemon

import (
	"os"
	"runtime/debug"
)

// Soft memory limits of the Go runtimes (heap, stacks and the runtime's
// own, not the binary's text), so that no daemon's heap drifts upwards on
// a Pi that has no swap: past its limit a daemon's GC runs more often
// rather than the heap growing. They are well above what each daemon uses
// at work (its working heap is a few MiB; the soak, integration/site
// TestSideBySideSoakRSS, measures it), so GC pacing, and with it the
// latency of the daemons' paths, is unchanged in normal operation. A
// GOMEMLIMIT in the environment wins.
const (
	MemoryLimit        = 32 << 20 // every daemon but those below
	MemoryLimitTailnet = 64 << 20 // tsnet: a whole Tailscale node (netstack buffers, the netmap)
)

// memoryLimit returns the soft limit of the daemon called name.
func memoryLimit(name string) int64 {
	if name == "tailnet" {
		return MemoryLimitTailnet
	}
	return MemoryLimit
}

// setMemoryLimit applies memoryLimit(name) unless GOMEMLIMIT is set, and
// returns the limit in force.
func setMemoryLimit(name string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1) // -1: read, do not change
	}
	l := memoryLimit(name)
	debug.SetMemoryLimit(l)
	return l
}

// GCPercent is the daemons' GOGC. Their live heaps are 1 to 3 MiB, where
// Go's default (100) lets the heap reach at least 4 MiB between
// collections: each /metrics scrape (statusd's, every 10 s) leaves garbage
// that grows the heap, and the runtime's bookkeeping with it, to that
// goal. 50 halves the goal (twice the collections, each of a small heap)
// and saves about 2 MiB per daemon (measured on statusd scraped 100
// times: private memory 7.4 → 5.1 MiB). A GOGC in the environment wins.
const GCPercent = 50

// setGCPercent applies GCPercent unless GOGC is set, and returns the
// percentage in force.
func setGCPercent() int {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent
}
