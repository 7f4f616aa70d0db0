package upsd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gate/config"
	"gate/internal/nut"
)

// Source is the UPS as the gate reads it: a NUT server elsewhere, or the
// UPS on the gate's USB.
type Source interface {
	// Read returns the UPS's variables and what it lets one set and run.
	Read(ctx context.Context) (Reading, error)
	// SetVar and InstCmd act on the UPS (ups.delay.shutdown,
	// shutdown.return, ...).
	// A refusal by the UPS is a *nut.Error with NUT's word for it.
	SetVar(ctx context.Context, name, value string) error
	// InstCmd runs a command, with its parameter when param is not "".
	InstCmd(ctx context.Context, name, param string) error
	Close() error
}

// Reading is one look at the UPS.
type Reading struct {
	Vars     map[string]string
	Writable map[string]bool
	Commands map[string]string // name → description
	// Types, Descs, Enums and Ranges are the UPS's own answers to GET
	// TYPE, GET DESC, LIST ENUM and LIST RANGE (see nut.Snapshot).
	Types  map[string]string
	Descs  map[string]string
	Enums  map[string][]string
	Ranges map[string][][2]string
}

// NUTSource reads a UPS from a NUT server: variables over one connection
// kept open, the writable variables and commands again every minute, and
// SET / INSTCMD over a connection of their own, logged in with the site
// file's source account.
type NUTSource struct {
	Src      config.NUTSource
	User     string
	Password string

	c        *nut.Client
	caps     Reading // all but Vars
	capsRead time.Time
}

// NewNUTSource returns the source the site file describes.
func NewNUTSource(c *config.Config) (*NUTSource, error) {
	u := c.UPS
	src, err := config.ParseNUTURL(u.Source)
	if err != nil {
		return nil, fmt.Errorf("ups.source: %w", err)
	}
	s := &NUTSource{Src: src, User: u.SourceUser}
	if s.User == "" {
		s.User = src.User
	}
	if u.SourcePassword.IsSet() {
		b, err := c.ReadSecret(u.SourcePassword)
		if err != nil {
			return nil, fmt.Errorf("ups.source_password: %w", err)
		}
		s.Password = string(b)
	}
	return s, nil
}

// Read implements Source.
func (s *NUTSource) Read(ctx context.Context) (Reading, error) {
	if s.c == nil {
		c, err := nut.Dial(ctx, s.Src.Addr)
		if err != nil {
			return Reading{}, err
		}
		s.c, s.capsRead = c, time.Time{}
	}
	vars, err := s.c.Vars(s.Src.UPS)
	if err != nil {
		s.c.Close()
		s.c = nil
		return Reading{}, fmt.Errorf("NUT source %s: %w", s.Src.Addr, err)
	}
	if time.Since(s.capsRead) > time.Minute {
		if caps, err := s.readCaps(vars); err == nil {
			s.caps, s.capsRead = caps, time.Now()
		}
	}
	r := s.caps
	r.Vars = vars
	return r, nil
}

// readCaps reads what changes seldom: the writable variables, the
// commands, and every variable's type and description, with the allowed
// values of those typed ENUM or RANGE.
func (s *NUTSource) readCaps(vars map[string]string) (Reading, error) {
	rw, err := s.c.RW(s.Src.UPS)
	if err != nil {
		return Reading{}, err
	}
	cmds, err := s.c.Commands(s.Src.UPS)
	if err != nil {
		return Reading{}, err
	}
	r := Reading{Writable: map[string]bool{}, Commands: map[string]string{},
		Types: map[string]string{}, Descs: map[string]string{}, Enums: map[string][]string{}, Ranges: map[string][][2]string{}}
	for k := range rw {
		r.Writable[k] = true
	}
	for k := range vars {
		t, err := s.c.Type(s.Src.UPS, k)
		if err != nil {
			return Reading{}, err
		}
		r.Types[k] = t
		if r.Descs[k], err = s.c.Desc(s.Src.UPS, k); err != nil {
			return Reading{}, err
		}
		words := strings.Fields(t)
		if slices.Contains(words, "ENUM") {
			if r.Enums[k], err = s.c.Enum(s.Src.UPS, k); err != nil {
				return Reading{}, err
			}
		}
		if slices.Contains(words, "RANGE") {
			if r.Ranges[k], err = s.c.Range(s.Src.UPS, k); err != nil {
				return Reading{}, err
			}
		}
	}
	for _, c := range cmds {
		d, err := s.c.CmdDesc(s.Src.UPS, c)
		if err != nil {
			d = "Unavailable"
		}
		r.Commands[c] = d
	}
	return r, nil
}

// admin runs f on a new connection logged in with the source account.
func (s *NUTSource) admin(ctx context.Context, f func(c *nut.Client) error) error {
	c, err := nut.Dial(ctx, s.Src.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(s.User, s.Password, ""); err != nil {
		// %v: the source's refusal of the gate's own account is not the
		// client's error word.
		return fmt.Errorf("NUT source %s as %s: %v", s.Src.Addr, s.User, err)
	}
	return f(c)
}

// SetVar implements Source.
func (s *NUTSource) SetVar(ctx context.Context, name, value string) error {
	return s.admin(ctx, func(c *nut.Client) error { return c.SetVar(s.Src.UPS, name, value) })
}

// InstCmd implements Source.
func (s *NUTSource) InstCmd(ctx context.Context, name, param string) error {
	return s.admin(ctx, func(c *nut.Client) error { return c.InstCmd(s.Src.UPS, name, param) })
}

// Close implements Source.
func (s *NUTSource) Close() error {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
	return nil
}
