// Package powerstate is the local interface through which upsd tells the
// other daemons (bootstrapd, hence `gate hosts`) each site host's power
// state and the progress of the shutdown and return plans: a small JSON
// file upsd rewrites atomically on /perm (/perm/gate/upsd/power.json on
// the gate) whenever something changes:
//
//	{"updated":"2026-01-02T03:04:05Z","plan":"idle","return":"group ceph",
//	 "hosts":{"ceph-1":{"state":"up","since":"2026-01-02T03:04:05Z"}}}
//
// plan is the shutdown plan's phase (idle, group <name>, ups-off,
// poweroff, over), return the return plan's (idle, waiting for power,
// group <name>, done); a host's state is up, shutting-down, logged-out,
// down, timeout (did not go down in time), powering-on or missing (did
// not come back).
package powerstate

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"gate/internal/atomicfile"
)

// Host is one host's power state.
type Host struct {
	State string    `json:"state"`
	Since time.Time `json:"since"`
}

// State is the file's content.
type State struct {
	Updated time.Time       `json:"updated"`
	Plan    string          `json:"plan"`
	Return  string          `json:"return"`
	Hosts   map[string]Host `json:"hosts"`
}

// Read reads the file at path.
func Read(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("power state %s: %w", path, err)
	}
	return s, nil
}

// Writer keeps the state and writes it to Path at every change.
type Writer struct {
	Path string // "" keeps it in memory only

	mu sync.Mutex
	s  State
}

// Plan sets the shutdown plan's phase.
func (w *Writer) Plan(phase string) error {
	return w.update(func(s *State) { s.Plan = phase })
}

// Return sets the return plan's phase.
func (w *Writer) Return(phase string) error {
	return w.update(func(s *State) { s.Return = phase })
}

// Host sets a host's state.
func (w *Writer) Host(name, state string) error {
	return w.update(func(s *State) {
		if s.Hosts == nil {
			s.Hosts = map[string]Host{}
		}
		if s.Hosts[name].State != state {
			s.Hosts[name] = Host{State: state, Since: time.Now().UTC()}
		}
	})
}

// State returns a copy of the state.
func (w *Writer) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.s
	c.Hosts = map[string]Host{}
	for k, v := range w.s.Hosts {
		c.Hosts[k] = v
	}
	return c
}

func (w *Writer) update(f func(*State)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.s)
	w.s.Updated = time.Now().UTC()
	if w.Path == "" {
		return nil
	}
	b, err := json.Marshal(w.s)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(w.Path, b, 0o644)
}
