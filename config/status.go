package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Status is the status page (statusd).
type Status struct {
	// Listen is the page's address (default ":8081"); Allow the client
	// sources let in (default: the LAN; loopback always).
	Listen   string         `yaml:"listen"`
	Allow    []netip.Prefix `yaml:"allow"`
	Interval Duration       `yaml:"interval"` // how often the daemons are read, default 10s
}

// Alerts are the messages sent when something happens (statusd).
type Alerts struct {
	Webhook *Webhook `yaml:"webhook"`
	Email   *Email   `yaml:"email"`
	// At most Limit messages per source (the UPS, the tunnel, a host...)
	// per Window; the rest go in one digest at the window's end.
	Limit  int      `yaml:"limit"`  // default 5
	Window Duration `yaml:"window"` // default 1h
	Queue  int      `yaml:"queue"`  // messages kept per channel while it fails, default 500
	// RetryMax bounds the backoff between delivery attempts (default 5m).
	RetryMax Duration `yaml:"retry_max"`
	// TunnelDownAfter: no hub answering this long is an event (default
	// DefaultTunnelDownAfter).
	TunnelDownAfter Duration `yaml:"tunnel_down_after"`
	// HostBackAfter: a host not back this long after mains returned from a
	// finished shutdown plan is an event (default DefaultHostBackAfter).
	HostBackAfter Duration `yaml:"host_back_after"`
}

// The events' thresholds when the site file sets none, also for the status
// page's events of a site without alerts.
const (
	DefaultTunnelDownAfter = 5 * time.Minute
	DefaultHostBackAfter   = 15 * time.Minute
)

// Webhook is a JSON POST per message.
type Webhook struct {
	URL string `yaml:"url"`
}

// Email is a message per e-mail over SMTP.
type Email struct {
	Server   string   `yaml:"server"` // host:port
	TLS      string   `yaml:"tls"`    // starttls (default), tls, none
	From     string   `yaml:"from"`
	To       []string `yaml:"to"`
	User     string   `yaml:"user"`
	Password Secret   `yaml:"password" secret:"external"`
}

func (c *Config) statusDefaults() {
	if s := c.Status; s != nil {
		orStr(&s.Listen, ":8081")
		if len(s.Allow) == 0 && c.LAN.Subnet.IsValid() {
			s.Allow = []netip.Prefix{c.LAN.Subnet}
		}
		orDur(&s.Interval, 10*time.Second)
	}
	if a := c.Alerts; a != nil {
		orInt(&a.Limit, 5)
		orDur(&a.Window, time.Hour)
		orInt(&a.Queue, 500)
		orDur(&a.RetryMax, 5*time.Minute)
		orDur(&a.TunnelDownAfter, DefaultTunnelDownAfter)
		orDur(&a.HostBackAfter, DefaultHostBackAfter)
		if e := a.Email; e != nil {
			orStr(&e.TLS, "starttls")
		}
	}
}

func (v *validator) status() {
	s := v.c.Status
	if _, port, err := net.SplitHostPort(s.Listen); err != nil || port == "" {
		v.errf("status.listen", "%q is not host:port (e.g. :8081)", s.Listen)
	}
	if s.Interval.D() < time.Second {
		v.errf("status.interval", "%s is below 1s", s.Interval.D())
	}
}

func (v *validator) alerts() {
	a := v.c.Alerts
	if a.Webhook == nil && a.Email == nil {
		v.errf("alerts", "no channel (webhook or email)")
	}
	if w := a.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errf("alerts.webhook.url", "%q is not an http(s) URL", w.URL)
		}
	}
	if e := a.Email; e != nil {
		if _, port, err := net.SplitHostPort(e.Server); err != nil || port == "" {
			v.errf("alerts.email.server", "%q is not host:port (e.g. smtp.example.net:587)", e.Server)
		}
		switch e.TLS {
		case "starttls", "tls":
		case "none":
			if e.User != "" {
				v.errf("alerts.email.user", "authentication without TLS would send the password in clear (tls: starttls or tls)")
			}
		default:
			v.errf("alerts.email.tls", "unknown mode %q (starttls, tls or none)", e.TLS)
		}
		if !strings.Contains(e.From, "@") {
			v.errf("alerts.email.from", "%q is not an e-mail address", e.From)
		}
		if len(e.To) == 0 {
			v.errf("alerts.email.to", "no recipient")
		}
		for i, to := range e.To {
			if !strings.Contains(to, "@") {
				v.errf(fmt.Sprintf("alerts.email.to[%d]", i), "%q is not an e-mail address", to)
			}
		}
		if e.User != "" && !e.Password.IsSet() {
			v.errf("alerts.email.password", "user %s needs a password (a secret reference)", e.User)
		}
	}
	if a.Limit < 1 {
		v.errf("alerts.limit", "must be at least 1")
	}
	if a.Queue < 1 {
		v.errf("alerts.queue", "must be at least 1")
	}
}
