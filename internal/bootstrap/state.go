// Package bootstrap is the re-imaging logic of bootstrapd: each host's
// state (flagged for re-imaging, last boot, install progress and result),
// kept on /perm, and the HTTP server that PXE-booted hosts, the imager,
// cloud-init and the operator's `gate` talk to.
package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gate/internal/atomicfile"
)

// Phases of a host.
const (
	PhaseIdle       = ""           // boots from its disk
	PhaseFlagged    = "flagged"    // next PXE boot installs
	PhaseInstalling = "installing" // an installer was booted; next boots go to disk
	PhaseWritten    = "written"    // the imager wrote the disk; waiting for phone-home
)

// HostState is what the gate remembers of a host.
type HostState struct {
	Phase       string    `json:"phase"`
	FlaggedAt   time.Time `json:"flagged_at,omitzero"`
	InstanceID  string    `json:"instance_id,omitempty"`
	LastBoot    time.Time `json:"last_boot,omitzero"`
	LastBootTo  string    `json:"last_boot_to,omitempty"` // imager, installer, disk
	Written     int64     `json:"written,omitempty"`
	Total       int64     `json:"total,omitempty"`
	ProgressAt  time.Time `json:"progress_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	ErrorAt     time.Time `json:"error_at,omitzero"`
	InstalledAt time.Time `json:"installed_at,omitzero"` // phone-home received
	LastResult  string    `json:"last_result,omitempty"` // ok, failed: ...
}

// Store holds every host's state, persisted atomically to one JSON file.
type Store struct {
	path string
	now  func() time.Time
	mu   sync.Mutex
	m    map[string]*HostState
}

// OpenStore loads dir/hosts.json (absent: empty).
func OpenStore(dir string, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{path: filepath.Join(dir, "hosts.json"), now: now, m: map[string]*HostState{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: read state: %w", err)
	}
	if err := json.Unmarshal(b, &s.m); err != nil {
		return nil, fmt.Errorf("bootstrap: state file %s is corrupt: %w", s.path, err)
	}
	if s.m == nil {
		s.m = map[string]*HostState{}
	}
	return s, nil
}

// Get returns a copy of a host's state.
func (s *Store) Get(name string) HostState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.m[name]; h != nil {
		return *h
	}
	return HostState{}
}

// All returns a copy of every host's state, by name.
func (s *Store) All() map[string]HostState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]HostState, len(s.m))
	for k, v := range s.m {
		out[k] = *v
	}
	return out
}

// Update changes a host's state under the lock and persists it when fn
// returns true.
func (s *Store) Update(name string, fn func(h *HostState, now time.Time) (persist bool, err error)) (HostState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.m[name]
	if h == nil {
		h = &HostState{}
	}
	c := *h
	persist, err := fn(&c, s.now().UTC())
	if err != nil {
		return *h, err
	}
	s.m[name] = &c
	if persist {
		if err := s.saveLocked(); err != nil {
			s.m[name] = h
			return *h, err
		}
	}
	return c, nil
}

func (s *Store) saveLocked() error {
	b, err := json.MarshalIndent(s.m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("bootstrap: save state: %w", err)
	}
	return nil
}
