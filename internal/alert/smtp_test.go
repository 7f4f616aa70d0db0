package alert

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMTP is a minimal ESMTP server for the TLS-mode cases (the real
// server, Debian's aiosmtpd, is in integration/status).
type fakeSMTP struct {
	addr      string
	starttls  bool // offers STARTTLS
	implicit  bool // TLS from the first byte
	mu        sync.Mutex
	log       []string // commands seen, and "TLS" once encrypted
	delivered int
}

func startFakeSMTP(t *testing.T, f *fakeSMTP, cert tls.Certificate) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f.addr = ln.Addr().String()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c, cfg)
		}
	}()
}

func (f *fakeSMTP) note(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *fakeSMTP) serve(c net.Conn, cfg *tls.Config) {
	defer c.Close()
	if f.implicit {
		c = tls.Server(c, cfg)
		f.note("TLS")
	}
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	say("220 fake ESMTP")
	encrypted := f.implicit
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.Fields(line + " x")[0])
		f.note(cmd)
		switch cmd {
		case "EHLO":
			if f.starttls && !encrypted {
				say("250-fake\r\n250-STARTTLS\r\n250 AUTH PLAIN")
			} else {
				say("250-fake\r\n250 AUTH PLAIN")
			}
		case "STARTTLS":
			say("220 go ahead")
			c = tls.Server(c, cfg)
			r, w = bufio.NewReader(c), bufio.NewWriter(c)
			encrypted = true
			f.note("TLS")
		case "AUTH":
			say("235 ok")
		case "DATA":
			say("354 go on")
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == ".\r\n" {
					break
				}
			}
			f.mu.Lock()
			f.delivered++
			f.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestSMTPModes(t *testing.T) {
	// A certificate for 127.0.0.1, trusted through TLSConfig.
	srv := httptest.NewTLSServer(nil)
	cert := srv.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	srv.Close()
	e := Event{Time: time.Now(), Kind: "mains-lost", Source: "ups", Severity: Critical, Title: "Mains lost"}
	for _, tc := range []struct {
		name      string
		server    struct{ starttls, implicit bool }
		mode      string
		user      string
		wantErr   string
		wantInLog string
	}{
		{"starttls with auth", struct{ starttls, implicit bool }{starttls: true}, SMTPStartTLS, "gate", "", "EHLO,STARTTLS,TLS,EHLO,AUTH,MAIL,RCPT,DATA"},
		{"starttls is required, not opportunistic", struct{ starttls, implicit bool }{}, SMTPStartTLS, "gate", "offers no STARTTLS", "EHLO"},
		{"the default mode is starttls", struct{ starttls, implicit bool }{}, "", "", "offers no STARTTLS", "EHLO"},
		{"implicit tls", struct{ starttls, implicit bool }{implicit: true}, SMTPTLS, "gate", "", "TLS,EHLO,AUTH,MAIL,RCPT,DATA"},
		{"none: a relay on the LAN", struct{ starttls, implicit bool }{}, SMTPNone, "", "", "EHLO,MAIL,RCPT,DATA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSMTP{starttls: tc.server.starttls, implicit: tc.server.implicit}
			startFakeSMTP(t, f, cert)
			s := &SMTP{Server: f.addr, TLS: tc.mode, From: "gate@lab", To: []string{"admin@lab"}, User: tc.user, Password: "pw",
				TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
			err := s.Send(context.Background(), "lab", e)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if got := strings.Join(f.log, ","); !strings.HasPrefix(got, tc.wantInLog) {
				t.Errorf("server saw %s, want %s…", got, tc.wantInLog)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.wantErr == ""]; f.delivered != want {
				t.Errorf("%d delivered, want %d", f.delivered, want)
			}
			if tc.wantErr != "" && strings.Contains(strings.Join(f.log, ","), "AUTH") {
				t.Error("the password was sent without TLS")
			}
		})
	}
}
