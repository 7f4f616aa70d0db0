package alert

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Limiter bounds the messages per source: at most Limit in a Window; the
// events beyond that are held and sent as one digest when the window ends.
// A source that flaps for hours therefore yields at most Limit+1 messages
// per window.
type Limiter struct {
	limit  int
	window time.Duration
	src    map[string]*srcState
}

type srcState struct {
	start time.Time // the window's start
	sent  int
	held  []Event
}

// NewLimiter returns a limiter (defaults: 5 per hour).
func NewLimiter(limit int, window time.Duration) *Limiter {
	if limit <= 0 {
		limit = 5
	}
	if window <= 0 {
		window = time.Hour
	}
	return &Limiter{limit: limit, window: window, src: map[string]*srcState{}}
}

// Admit returns what to send for e: e itself, nothing (held for the
// digest), or a digest of the ended window followed by e.
func (l *Limiter) Admit(e Event) []Event {
	if e.Always {
		return []Event{e}
	}
	s := l.src[e.Source]
	var out []Event
	if s != nil && !e.Time.Before(s.start.Add(l.window)) {
		if d, ok := l.digest(e.Source, s); ok {
			out = append(out, d)
		}
		s = nil
	}
	if s == nil {
		s = &srcState{start: e.Time}
		l.src[e.Source] = s
	}
	if s.sent < l.limit {
		s.sent++
		return append(out, e)
	}
	s.held = append(s.held, e)
	return out
}

// Due returns the digests of the windows that ended by now.
func (l *Limiter) Due(now time.Time) []Event {
	var keys []string
	for k, s := range l.src {
		if !now.Before(s.start.Add(l.window)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []Event
	for _, k := range keys {
		if d, ok := l.digest(k, l.src[k]); ok {
			out = append(out, d)
		}
		delete(l.src, k)
	}
	return out
}

// maxDigestLines bounds a digest's text.
const maxDigestLines = 20

func (l *Limiter) digest(source string, s *srcState) (Event, bool) {
	if len(s.held) == 0 {
		return Event{}, false
	}
	last := s.held[len(s.held)-1]
	sev := Info
	var b strings.Builder
	for i, e := range s.held {
		if rank(e.Severity) > rank(sev) {
			sev = e.Severity
		}
		if i < maxDigestLines {
			fmt.Fprintf(&b, "%s  %s\n", e.Time.UTC().Format("15:04:05"), e.Title)
		}
	}
	if n := len(s.held) - maxDigestLines; n > 0 {
		fmt.Fprintf(&b, "... and %d more\n", n)
	}
	return Event{
		Time: last.Time, Kind: "digest", Source: source, Severity: sev,
		Title: fmt.Sprintf("%s: %d more events (last: %s)", source, len(s.held), last.Title),
		Text:  fmt.Sprintf("More than %d messages from %s in %s; these were held:\n%s", l.limit, source, l.window, b.String()),
	}, true
}

func rank(sev string) int {
	switch sev {
	case Critical:
		return 2
	case Warning:
		return 1
	}
	return 0
}
