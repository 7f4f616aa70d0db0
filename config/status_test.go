package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestStatusAndAlertsDefaults(t *testing.T) {
	c, err := Parse("site.yaml", []byte(minimal+"status: {}\nalerts: {webhook: {url: \"http://10.1.0.9/topic\"}, email: {server: \"mail:587\", from: g@x, to: [a@x]}}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, a := c.Status, c.Alerts
	if s.Listen != ":8081" || len(s.Allow) != 1 || s.Allow[0] != netip.MustParsePrefix("10.1.0.0/24") || s.Interval.D() != 10*time.Second {
		t.Errorf("status defaults: %+v", s)
	}
	if a.Limit != 5 || a.Window.D() != time.Hour || a.Queue != 500 || a.RetryMax.D() != 5*time.Minute || a.TunnelDownAfter.D() != 5*time.Minute || a.HostBackAfter.D() != 15*time.Minute || a.Email.TLS != "starttls" {
		t.Errorf("alerts defaults: %+v %+v", a, a.Email)
	}
	if c, _ := Parse("site.yaml", []byte(minimal), t.TempDir()); c.Status != nil || c.Alerts != nil {
		t.Error("absent status/alerts decoded as present")
	}
}

func TestStatusAndAlertsProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"status: {listen: \"8081\"}", "status.listen: \"8081\" is not host:port"},
		{"status: {interval: 100ms}", "status.interval: 100ms is below 1s"},
		{"alerts: {limit: 3}", "alerts: no channel"},
		{"alerts: {webhook: {url: \"ftp://x/y\"}}", "alerts.webhook.url: \"ftp://x/y\" is not an http(s) URL"},
		{"alerts: {email: {server: mail, from: g@x, to: [a@x]}}", "alerts.email.server: \"mail\" is not host:port"},
		{"alerts: {email: {server: \"mail:25\", tls: none, from: g@x, to: [a@x], user: u, password: \"file:p\"}}", "alerts.email.user: authentication without TLS"},
		{"alerts: {email: {server: \"mail:25\", tls: ssl, from: g@x, to: [a@x]}}", "alerts.email.tls: unknown mode \"ssl\""},
		{"alerts: {email: {server: \"mail:25\", from: g, to: []}}", "alerts.email.to: no recipient"},
		{"alerts: {email: {server: \"mail:25\", from: g@x, to: [a@x, b]}}", "alerts.email.to[1]: \"b\" is not an e-mail address"},
		{"alerts: {email: {server: \"mail:587\", from: g@x, to: [a@x], user: u}}", "alerts.email.password: user u needs a password"},
		{"alerts: {email: {server: \"mail:587\", from: g@x, to: [a@x], user: u, password: \"file:smtp\"}}", "smtp does not exist (write the value"},
	} {
		_, err := Parse("site.yaml", []byte(minimal+tc.yaml+"\n"), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant …%s…", tc.yaml, err, tc.want)
		}
	}
}
