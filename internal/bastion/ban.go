package bastion

import (
	"sync"
	"time"
)

// banList counts authentication failures per source and bans a source
// that fails too often. It holds at most max sources, forgetting the
// least recently seen one, so a flood of sources cannot exhaust memory.
type banList struct {
	mu  sync.Mutex
	max int
	m   map[string]*banEntry
}

type banEntry struct {
	failures int
	first    time.Time
	seen     time.Time
	until    time.Time
}

func newBanList(max int) *banList { return &banList{max: max, m: map[string]*banEntry{}} }

// fail records a failure; it reports whether the source is now banned (for
// the first time).
func (b *banList) fail(src string, after int, banFor time.Duration, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[src]
	if !ok {
		if len(b.m) >= b.max {
			b.evict()
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

func (b *banList) banned(src string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[src]
	return ok && now.Before(e.until)
}

func (b *banList) evict() {
	var oldest string
	var t time.Time
	for k, e := range b.m {
		if oldest == "" || e.seen.Before(t) {
			oldest, t = k, e.seen
		}
	}
	delete(b.m, oldest)
}
