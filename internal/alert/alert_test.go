package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/internal/metrics"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func ev(at time.Duration, source, title string) Event {
	return Event{Time: t0.Add(at), Kind: "test", Source: source, Severity: Warning, Title: title}
}

func TestLimiterFlapping(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     int
		window    time.Duration
		events    int           // one source flapping
		every     time.Duration // between events
		maxOut    int
		wantDigst int
	}{
		{"quiet source: every event", 5, time.Hour, 3, time.Minute, 3, 0},
		{"flapping for ten minutes: 5 then one digest", 5, time.Hour, 100, 6 * time.Second, 6, 1},
		{"flapping for three hours: 5+1 per window", 5, time.Hour, 1080, 10 * time.Second, 18, 3},
		{"limit 1", 1, 10 * time.Minute, 60, 10 * time.Second, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(tc.limit, tc.window)
			var out []Event
			for i := 0; i < tc.events; i++ {
				out = append(out, l.Admit(ev(time.Duration(i)*tc.every, "ups", fmt.Sprintf("flap %d", i)))...)
				out = append(out, l.Due(t0.Add(time.Duration(i)*tc.every))...)
			}
			out = append(out, l.Due(t0.Add(time.Duration(tc.events)*tc.every+tc.window))...)
			digests, held := 0, 0
			for _, e := range out {
				if e.Kind == "digest" {
					digests++
					var n int
					fmt.Sscanf(e.Title[strings.Index(e.Title, ":")+2:], "%d", &n)
					held += n
				}
			}
			if len(out) > tc.maxOut || digests != tc.wantDigst {
				t.Fatalf("%d messages (%d digests) from %d events; want at most %d with %d digests", len(out), digests, tc.events, tc.maxOut, tc.wantDigst)
			}
			if sent := len(out) - digests; sent+held != tc.events {
				t.Errorf("%d sent + %d in digests ≠ %d events: something was lost", sent, held, tc.events)
			}
		})
	}
}

func TestLimiterPerSource(t *testing.T) {
	l := NewLimiter(2, time.Hour)
	var out []Event
	for i := 0; i < 10; i++ {
		out = append(out, l.Admit(ev(time.Duration(i)*time.Second, "ups", "u"))...)
	}
	out = append(out, l.Admit(ev(11*time.Second, "vpn", "tunnel down"))...)
	steps := ev(12*time.Second, "ups", "plan step")
	steps.Always = true
	for i := 0; i < 4; i++ {
		out = append(out, l.Admit(steps)...)
	}
	if len(out) != 7 || out[2].Source != "vpn" || out[6].Title != "plan step" {
		t.Fatalf("a flapping ups silenced the vpn: %v", out)
	}
	d := l.Due(t0.Add(2 * time.Hour))
	if len(d) != 1 || d[0].Source != "ups" || !strings.Contains(d[0].Text, "u\n") || d[0].Severity != Warning {
		t.Fatalf("digest: %+v", d)
	}
}

func TestQueueOrderBoundAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.json")
	q, err := OpenQueue(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := q.Push(ev(time.Duration(i)*time.Second, "ups", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Reopened (a reboot): same content, oldest first, the drop counted.
	q, err = OpenQueue(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; ; i++ {
		e, ok := q.Peek()
		if !ok {
			break
		}
		if i == 0 && e.Dropped != 2 {
			t.Errorf("first out says %d dropped, want 2", e.Dropped)
		}
		if i > 0 && e.Dropped != 0 {
			t.Errorf("message %d says %d dropped", i, e.Dropped)
		}
		got = append(got, e.Title)
		q.Pop()
	}
	if strings.Join(got, ",") != "2,3,4" {
		t.Errorf("queue gave %v, want the three newest in order", got)
	}
	// A smaller bound after an update, and a corrupt file.
	for i := 0; i < 3; i++ {
		q.Push(ev(0, "ups", fmt.Sprint(i)))
	}
	q, _ = OpenQueue(path, 1)
	if e, _ := q.Peek(); q.Len() != 1 || e.Title != "2" || e.Dropped != 2 {
		t.Errorf("bound 1: len %d, %+v", q.Len(), e)
	}
	writeFile(t, path, "{not json")
	q, err = OpenQueue(path, 3)
	if err != nil || q.Len() != 0 {
		t.Errorf("corrupt queue: %v, %d", err, q.Len())
	}
}

// flaky fails until up, and records what it delivered.
type flaky struct {
	mu  sync.Mutex
	up  bool
	got []string
	try int
}

func (f *flaky) Name() string { return "flaky" }
func (f *flaky) Send(ctx context.Context, site string, e Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.try++
	if !f.up {
		return errors.New("receiver down")
	}
	f.got = append(f.got, e.Title)
	return nil
}

func TestAlerterDeliversInOrderAfterOutage(t *testing.T) {
	f := &flaky{}
	dir := t.TempDir()
	a, err := New(Options{Site: "lab", Channels: []Channel{f}, Dir: dir, MinRetry: 10 * time.Millisecond, MaxRetry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	now := time.Now()
	for i, title := range []string{"mains lost", "plan started", "group compute", "plan finished"} {
		a.Notify(Event{Time: now.Add(time.Duration(i) * time.Millisecond), Source: fmt.Sprint("s", i), Kind: "k", Title: title})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		tries := f.try
		f.mu.Unlock()
		if tries >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.Pending()["flaky"] != 4 {
		t.Fatalf("pending %v while the receiver is down", a.Pending())
	}
	// The process stops while the receiver is down (the gate powers off);
	// a new one delivers once the receiver is back.
	cancel()
	<-done
	f.mu.Lock()
	f.up = true
	f.mu.Unlock()
	failed := a.failed.WithLabelValues("flaky").Value()
	if failed < 3 || a.queued.WithLabelValues("flaky").Value() != 4 || a.events.WithLabelValues("k").Value() != 4 {
		t.Errorf("metrics while down: failed %v, queued %v", failed, a.queued.WithLabelValues("flaky").Value())
	}
	reg := metrics.NewRegistry()
	a, err = New(Options{Site: "lab", Channels: []Channel{f}, Dir: dir, MinRetry: 10 * time.Millisecond, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	a.Tick() // wake the delivery
	a.Notify()
	settled := func() bool {
		return a.Pending()["flaky"] == 0 && a.queued.WithLabelValues("flaky").Value() == 0 && a.sent.WithLabelValues("flaky").Value() == 4
	}
	for time.Now().Before(deadline.Add(5*time.Second)) && !settled() {
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.got, "|") != "mains lost|plan started|group compute|plan finished" {
		t.Fatalf("delivered %q", f.got)
	}
	names := map[string]bool{}
	for _, mf := range reg.Gather() {
		names[mf.Name] = true
	}
	if !names["gate_status_alerts_sent_total"] || !names["gate_status_alerts_queued"] ||
		a.sent.WithLabelValues("flaky").Value() != 4 || a.queued.WithLabelValues("flaky").Value() != 0 {
		t.Errorf("metrics after delivery: %v, sent %v", names, a.sent.WithLabelValues("flaky").Value())
	}
}

func TestWebhook(t *testing.T) {
	var got WebhookBody
	var hdr http.Header
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL + "/secret-topic"}
	e := Event{Time: t0, Kind: "mains-lost", Source: "ups", Severity: Critical, Title: "Mains lost", Text: "on battery, 98%"}
	if err := w.Send(context.Background(), "home", e); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "mains-lost" || got.Site != "home" || got.Title != "[home] Mains lost" || got.Message != "on battery, 98%" || !got.Time.Equal(t0) {
		t.Errorf("webhook body %+v", got)
	}
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Template") != "yes" || hdr.Get("X-Priority") != "5" {
		t.Errorf("headers %v", hdr)
	}
	status = http.StatusServiceUnavailable
	err := w.Send(context.Background(), "home", e)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a 503 was taken for delivery: %v", err)
	}
	if strings.Contains(err.Error(), "secret-topic") {
		t.Errorf("the error shows the URL's path (a topic is a secret): %v", err)
	}
}

func TestMessage(t *testing.T) {
	e := Event{Time: t0, Kind: "plan-finished", Source: "plan", Severity: Critical, Title: "Shutdown finished — gate off", Text: ".leading dot\nsecond line", Dropped: 3}
	m, err := mail.ReadMessage(strings.NewReader(string(Message("home", "gate@example.net", []string{"a@example.net", "b@example.net"}, e))))
	if err != nil {
		t.Fatal(err)
	}
	subj, err := new(mimeDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subj != "[home] Shutdown finished — gate off" {
		t.Errorf("subject %q (%v)", subj, err)
	}
	if to, _ := m.Header.AddressList("To"); len(to) != 2 {
		t.Errorf("To: %v", to)
	}
	b := make([]byte, 4096)
	n, _ := m.Body.Read(b)
	text := string(b[:n])
	for _, want := range []string{".leading dot\r\n", "kind: plan-finished", "3 older messages were dropped"} {
		if !strings.Contains(text, want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}
}

type mimeDecoder = mime.WordDecoder

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
