package status

import (
	"bytes"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"gate/internal/history"
)

//go:embed page.html
var pageHTML string

//go:embed style.css
var styleCSS string

// The history's series, in order.
const (
	SeriesCharge    = "charge"
	SeriesLoad      = "load"
	SeriesHandshake = "handshake"
)

// SeriesNames are the history's series names.
var SeriesNames = []string{SeriesCharge, SeriesLoad, SeriesHandshake}

// Sample returns the history values of a snapshot, in Series order (NaN
// when unknown): battery charge, UPS load, and the active hub's handshake
// age.
func Sample(s *Snapshot) []float64 {
	v := []float64{math.NaN(), math.NaN(), math.NaN()}
	if p := s.Power; p != nil {
		if p.Charge != nil {
			v[0] = *p.Charge
		}
		if p.Load != nil {
			v[1] = *p.Load
		}
	}
	if t := s.Tunnel; t != nil {
		if h, ok := t.ActiveHub(); ok && h.HandshakeAge != nil {
			v[2] = *h.HandshakeAge
		}
	}
	return v
}

var funcs = template.FuncMap{
	"ago":    ago,
	"dur":    func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"bytes":  humanBytes,
	"pct":    func(f *float64) string { return optional(f, "%.0f %%") },
	"secs":   func(f *float64) string { return optional(f, "%.0f s") },
	"num":    func(f *float64) string { return optional(f, "%.0f") },
	"when":   when,
	"join":   strings.Join,
	"isTrue": func(b *bool) bool { return b != nil && *b },
	"css":    func() template.CSS { return template.CSS(styleCSS) },
}

func optional(f *float64, format string) string {
	if f == nil {
		return "—"
	}
	return fmt.Sprintf(format, *f)
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func ago(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func humanBytes(v any) string {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case uint64:
		f = float64(x)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", f)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))

// Graph is one inline SVG graph of the page.
type Graph struct {
	Title string
	SVG   template.HTML
}

// pageData is what the template gets.
type pageData struct {
	*Snapshot
	Graphs []Graph
}

// Graph sizes.
const (
	graphW, graphH = 560, 110
)

// SVG draws one series as an inline SVG polyline over [from, to]; yMax 0
// scales to the data.
func SVG(title, unit string, pts []history.XY, from, to time.Time, yMax float64) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="graph" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, graphW, graphH+20, graphW, graphH+20, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" class="bg"/>`, graphW, graphH)
	if yMax <= 0 {
		for _, p := range pts {
			yMax = max(yMax, p.V)
		}
		if yMax <= 0 {
			yMax = 1
		}
		yMax *= 1.1
	}
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	var coords []byte
	var lastX, lastY float64
	n := 0
	for _, p := range pts {
		if p.T.Before(from) {
			continue
		}
		lastX = float64(graphW) * p.T.Sub(from).Seconds() / span
		lastY = float64(graphH) * (1 - min(max(p.V/yMax, 0), 1))
		if n > 0 {
			coords = append(coords, ' ')
		}
		coords = strconv.AppendFloat(coords, lastX, 'f', 1, 64)
		coords = append(coords, ',')
		coords = strconv.AppendFloat(coords, lastY, 'f', 1, 64)
		n++
	}
	if n > 0 {
		fmt.Fprintf(&b, `<polyline class="line" fill="none" points="%s"/>`, coords)
		fmt.Fprintf(&b, `<circle class="last" cx="%.1f" cy="%.1f" r="2.5"/>`, lastX, lastY) // the newest point, visible alone
	} else {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="none">no data yet</text>`, graphW/2-40, graphH/2)
	}
	fmt.Fprintf(&b, `<text x="2" y="%d" class="axis">%s</text>`, graphH+14, template.HTMLEscapeString(from.UTC().Format("Jan 2 15:04")))
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis" text-anchor="end">%s · max %.0f %s</text>`, graphW-2, graphH+14, template.HTMLEscapeString(to.UTC().Format("Jan 2 15:04")), yMax, template.HTMLEscapeString(unit))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Graphs returns the page's graphs from h at now.
func Graphs(h *history.History, now time.Time) []Graph {
	var out []Graph
	for _, tier := range []struct {
		name  string
		label string
		span  time.Duration
	}{{"hours", "last 6 hours", 6 * time.Hour}, {"days", "last 7 days", 7 * 24 * time.Hour}} {
		for _, s := range []struct {
			name, title, unit string
			yMax              float64
		}{
			{SeriesCharge, "Battery charge", "%", 100},
			{SeriesLoad, "UPS load", "%", 100},
			{SeriesHandshake, "Tunnel handshake age", "s", 0},
		} {
			pts, _ := h.Points(tier.name, s.name)
			title := s.title + ", " + tier.label
			out = append(out, Graph{Title: title, SVG: SVG(title, s.unit, pts, now.Add(-tier.span), now, s.yMax)})
		}
	}
	return out
}

// Render writes the HTML page of s with the graphs of h.
func Render(w *bytes.Buffer, s *Snapshot, h *history.History) error {
	return pageTmpl.Execute(w, pageData{Snapshot: s, Graphs: Graphs(h, s.Time)})
}

// Server serves the page and the JSON.
type Server struct {
	Password string         // gokrazy's (user "gokrazy")
	Allow    []netip.Prefix // client sources let in (loopback always)
	History  *history.History
	Log      *slog.Logger

	mu   sync.Mutex
	snap *Snapshot
}

// Set replaces the snapshot served.
func (s *Server) Set(snap *Snapshot) {
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
}

// Current returns the snapshot served.
func (s *Server) Current() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// ServeHTTP serves / (HTML) and /status.json.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(r.RemoteAddr) {
		http.Error(w, "forbidden: the status page answers the LAN only (status.allow)", http.StatusForbidden)
		return
	}
	user, pw, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte("gokrazy")) != 1 || subtle.ConstantTimeCompare([]byte(pw), []byte(s.Password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="gate status"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	snap := s.Current()
	if snap == nil {
		http.Error(w, "no data yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/status.json":
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(snap)
	case "/":
		var b bytes.Buffer
		if err := Render(&b, snap, s.History); err != nil {
			s.Log.Error("status page", "err", err)
			http.Error(w, "the page failed to render", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Write(b.Bytes())
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) allowed(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range s.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
