package bastion

import (
	"net/netip"
	"sync"
	"time"
)

// banList counts authentication failures per source (an IPv4 address or
// an IPv6 /64, see tcpserve.Source) and bans a source that fails too
// often. A failure is a connection that tried to authenticate and ended
// without succeeding (a key refused, a bad signature, a client giving
// up): the public-key queries an agent makes on the way to the right key
// are not failures. A success forgets the source's failures.
//
// It holds at most max sources, forgetting the least recently seen one
// that is not banned, so a flood of sources can neither exhaust memory
// nor push an active ban out; when every entry is an active ban, a new
// source's failure is not recorded.
type banList struct {
	mu  sync.Mutex
	max int
	m   map[netip.Addr]*banEntry
}

type banEntry struct {
	failures int
	first    time.Time
	seen     time.Time
	until    time.Time
}

func newBanList(max int) *banList { return &banList{max: max, m: map[netip.Addr]*banEntry{}} }

// fail records a failure; it reports whether the source is now banned (for
// the first time).
func (b *banList) fail(src netip.Addr, after int, banFor time.Duration, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[src]
	if !ok {
		if len(b.m) >= b.max && !b.evict(now) {
			return false
		}
		e = &banEntry{first: now}
		b.m[src] = e
	}
	if now.Sub(e.first) > banFor { // failures older than the ban window are forgotten
		e.failures, e.first = 0, now
	}
	e.failures++
	e.seen = now
	if e.failures >= after && !now.Before(e.until) {
		e.until = now.Add(banFor)
		return true
	}
	return false
}

// succeed forgets the failures of src (a ban in force stays).
func (b *banList) succeed(src netip.Addr, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.m[src]; ok && !now.Before(e.until) {
		delete(b.m, src)
	}
}

func (b *banList) banned(src netip.Addr, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[src]
	return ok && now.Before(e.until)
}

// evict forgets the least recently seen source not banned at now; it
// reports false if every source is.
func (b *banList) evict(now time.Time) bool {
	var oldest netip.Addr
	var t time.Time
	for k, e := range b.m {
		if now.Before(e.until) {
			continue
		}
		if !oldest.IsValid() || e.seen.Before(t) {
			oldest, t = k, e.seen
		}
	}
	if !oldest.IsValid() {
		return false
	}
	delete(b.m, oldest)
	return true
}
