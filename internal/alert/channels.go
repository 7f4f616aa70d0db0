package alert

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"time"
)

// Webhook POSTs each message as JSON to URL. The request also carries
// ntfy's template headers, so an ntfy topic URL (ntfy 2.10 or later) shows
// the title and the message instead of the raw JSON; other receivers
// ignore them.
type Webhook struct {
	URL    string
	Client *http.Client // default: 30 s timeout
}

// WebhookBody is what the webhook receives.
type WebhookBody struct {
	Site     string    `json:"site"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Source   string    `json:"source"`
	Severity string    `json:"severity"`
	Title    string    `json:"title"`
	Message  string    `json:"message"`
	Dropped  int       `json:"dropped,omitempty"`
}

// Name implements Channel.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Channel: any 2xx answer is delivery.
func (w *Webhook) Send(ctx context.Context, site string, e Event) error {
	msg := e.Text
	if msg == "" {
		msg = e.Title
	}
	b, _ := json.Marshal(WebhookBody{Site: site, Time: e.Time.UTC(), Kind: e.Kind, Source: e.Source, Severity: e.Severity,
		Title: Subject(site, e), Message: msg, Dropped: e.Dropped})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Template", "yes")
	req.Header.Set("X-Title", "{{.title}}")
	req.Header.Set("X-Message", "{{.message}}")
	req.Header.Set("X-Priority", map[string]string{Critical: "5", Warning: "4", Info: "3"}[e.Severity])
	req.Header.Set("X-Tags", e.Kind)
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", redactURL(w.URL), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: HTTP %s", redactURL(w.URL), resp.Status)
	}
	return nil
}

// redactURL keeps a URL's scheme and host (its path may be a secret topic).
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			return u[:i+3+j] + "/…"
		}
	}
	return u
}

// TLS modes of the SMTP channel.
const (
	SMTPStartTLS = "starttls" // plain connection, STARTTLS required
	SMTPTLS      = "tls"      // TLS from the start (port 465)
	SMTPNone     = "none"     // no TLS (a relay on the LAN); no authentication
)

// SMTP sends each message as an e-mail.
type SMTP struct {
	Server   string // host:port
	TLS      string // SMTPStartTLS (default), SMTPTLS, SMTPNone
	From     string
	To       []string
	User     string
	Password string
	Hello    string // the EHLO name (default gate)
	// TLSConfig, when set, replaces the default (the system's roots,
	// ServerName the server's host).
	TLSConfig *tls.Config
}

// Name implements Channel.
func (s *SMTP) Name() string { return "email" }

// Send implements Channel.
func (s *SMTP) Send(ctx context.Context, site string, e Event) error {
	host, _, err := net.SplitHostPort(s.Server)
	if err != nil {
		return fmt.Errorf("smtp server %q: %w", s.Server, err)
	}
	tc := s.TLSConfig
	if tc == nil {
		tc = &tls.Config{ServerName: host}
	}
	d := &net.Dialer{Timeout: 30 * time.Second}
	var conn net.Conn
	if s.TLS == SMTPTLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", s.Server)
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.Server)
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.Server, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp %s: greeting: %w", s.Server, err)
	}
	defer c.Close()
	if err := c.Hello(cmp.Or(s.Hello, "gate")); err != nil {
		return fmt.Errorf("smtp %s: EHLO: %w", s.Server, err)
	}
	if s.TLS == "" || s.TLS == SMTPStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp %s: the server offers no STARTTLS (set tls: none for a relay without TLS)", s.Server)
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", s.Server, err)
		}
	}
	if s.User != "" {
		if err := c.Auth(smtp.PlainAuth("", s.User, s.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: AUTH as %s: %w", s.Server, s.User, err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM %s: %w", s.Server, s.From, err)
	}
	for _, to := range s.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", s.Server, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.Server, err)
	}
	if _, err := w.Write(Message(site, s.From, s.To, e)); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.Server, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: end of DATA: %w", s.Server, err)
	}
	c.Quit() // delivered: the server accepted the end of DATA
	return nil
}

// Message is the RFC 5322 form of an e-mail (CRLF line ends, UTF-8 text,
// the subject encoded when it is not ASCII).
func Message(site, from string, to []string, e Event) []byte {
	var b bytes.Buffer
	id := make([]byte, 8)
	rand.Read(id)
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", from)
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", Subject(site, e)))
	hdr("Date", e.Time.Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<%s.%s@%s>", e.Time.UTC().Format("20060102150405"), hex.EncodeToString(id), site))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	hdr("X-Gate-Kind", e.Kind)
	hdr("X-Gate-Severity", e.Severity)
	b.WriteString("\r\n")
	// net/smtp's DATA writer does the dot-stuffing.
	for _, line := range strings.Split(strings.TrimRight(Body(site, e), "\n"), "\n") {
		b.WriteString(line + "\r\n")
	}
	return b.Bytes()
}
