package upsd

import (
	"context"
	"fmt"
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
	SetVar(ctx context.Context, name, value string) error
	InstCmd(ctx context.Context, name string) error
	Close() error
}

// Reading is one look at the UPS.
type Reading struct {
	Vars     map[string]string
	Writable map[string]bool
	Commands map[string]string // name → description
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
	caps     Reading // Writable, Commands
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
		if caps, err := s.readCaps(); err == nil {
			s.caps, s.capsRead = caps, time.Now()
		}
	}
	return Reading{Vars: vars, Writable: s.caps.Writable, Commands: s.caps.Commands}, nil
}

func (s *NUTSource) readCaps() (Reading, error) {
	rw, err := s.c.RW(s.Src.UPS)
	if err != nil {
		return Reading{}, err
	}
	cmds, err := s.c.Commands(s.Src.UPS)
	if err != nil {
		return Reading{}, err
	}
	r := Reading{Writable: map[string]bool{}, Commands: map[string]string{}}
	for k := range rw {
		r.Writable[k] = true
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
		return fmt.Errorf("NUT source %s as %s: %w", s.Src.Addr, s.User, err)
	}
	return f(c)
}

// SetVar implements Source.
func (s *NUTSource) SetVar(ctx context.Context, name, value string) error {
	return s.admin(ctx, func(c *nut.Client) error { return c.SetVar(s.Src.UPS, name, value) })
}

// InstCmd implements Source.
func (s *NUTSource) InstCmd(ctx context.Context, name string) error {
	return s.admin(ctx, func(c *nut.Client) error { return c.InstCmd(s.Src.UPS, name) })
}

// Close implements Source.
func (s *NUTSource) Close() error {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
	return nil
}
