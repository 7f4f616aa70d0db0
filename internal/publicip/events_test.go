package publicip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// genaBox is a WANIPConnection event publisher written from the UPnP
// Device Architecture (§4.1 SUBSCRIBE/renew/UNSUBSCRIBE, §4.2 NOTIFY with
// the initial event): one subscriber at a time.
type genaBox struct {
	mu           sync.Mutex
	addr         string
	callback     string
	sid          string
	seq          int
	subs, renews int
	unsubscribed bool
}

func (b *genaBox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch r.Method {
	case "SUBSCRIBE":
		if sid := r.Header.Get("SID"); sid != "" {
			if sid != b.sid {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			b.renews++
		} else {
			cb := strings.Trim(r.Header.Get("CALLBACK"), "<>")
			if r.Header.Get("NT") != "upnp:event" || cb == "" {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			b.subs++
			b.callback, b.sid, b.seq = cb, fmt.Sprintf("uuid:sub-%d", b.subs), 0
			go b.notify(b.sid, b.callback, 0, b.addr) // the initial event
		}
		w.Header().Set("SID", b.sid)
		w.Header().Set("TIMEOUT", "Second-1800")
	case "UNSUBSCRIBE":
		b.unsubscribed = r.Header.Get("SID") == b.sid
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (b *genaBox) notify(sid, callback string, seq int, addr string) {
	time.Sleep(10 * time.Millisecond) // after the SUBSCRIBE answer
	req, _ := http.NewRequest("NOTIFY", callback, bytes.NewReader(EventBody(map[string]string{"ExternalIPAddress": addr, "ConnectionStatus": "Connected"})))
	req.Header.Set("NT", "upnp:event")
	req.Header.Set("NTS", "upnp:propchange")
	req.Header.Set("SID", sid)
	req.Header.Set("SEQ", fmt.Sprint(seq))
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// set changes the WAN address and announces it.
func (b *genaBox) set(addr string) {
	b.mu.Lock()
	b.addr = addr
	b.seq++
	sid, cb, seq := b.sid, b.callback, b.seq
	b.mu.Unlock()
	b.notify(sid, cb, seq, addr)
}

// forge sends the subscriber an event under another subscription's SID,
// the box's address unchanged.
func (b *genaBox) forge(addr, sid string) {
	b.mu.Lock()
	cb := b.callback
	b.mu.Unlock()
	b.notify(sid, cb, 1, addr)
}

func (b *genaBox) external(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr, nil
}

// TestBoxEvents: the box's announcements reach the caller: not the first
// address (nothing changed), each new one once, never an event of another
// subscription; polling catches a change the box did not announce; the
// subscription ends with an UNSUBSCRIBE.
func TestBoxEvents(t *testing.T) {
	box := &genaBox{addr: "198.51.100.7"}
	ts := httptest.NewServer(box)
	defer ts.Close()
	ev, _ := url.Parse(ts.URL + "/evt/IPConn")
	got := make(chan netip.Addr, 10)
	b := &BoxEvents{Poll: 200 * time.Millisecond, Locate: func(context.Context) (*IGDService, error) {
		return &IGDService{EventURL: ev, Local: net.IPv4(127, 0, 0, 1), External: box.external}, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx, func(a netip.Addr) { got <- a }); close(done) }()
	wait := func(want string) {
		t.Helper()
		select {
		case a := <-got:
			if a.String() != want {
				t.Fatalf("reported %s, want %s", a, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not reported", want)
		}
	}
	for i := 0; ; i++ { // until subscribed (bounded)
		box.mu.Lock()
		n := box.subs
		box.mu.Unlock()
		if n > 0 {
			break
		}
		if i > 100 {
			t.Fatal("no SUBSCRIBE")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("the first address %s was reported as a change", a)
	default:
	}
	box.set("198.51.100.8")
	wait("198.51.100.8")
	box.set("198.51.100.8") // the same again: nothing
	box.forge("203.0.113.9", "uuid:someone-else")
	time.Sleep(300 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("reported %s: a repeat or another subscription's event", a)
	default:
	}
	// A change without an event: the poll catches it.
	box.mu.Lock()
	box.addr = "198.51.100.9"
	box.mu.Unlock()
	wait("198.51.100.9")
	cancel()
	<-done
	box.mu.Lock()
	defer box.mu.Unlock()
	if !box.unsubscribed {
		t.Error("no UNSUBSCRIBE at the end")
	}
}

func TestParseTimeout(t *testing.T) {
	for h, want := range map[string]time.Duration{
		"Second-1800": 1800 * time.Second, "Second-5": 20 * time.Second, "Second-infinite": 24 * time.Hour,
		"": 1800 * time.Second, "Second-x": 1800 * time.Second, "Second-99999999": 24 * time.Hour,
	} {
		if got := ParseTimeout(h); got != want {
			t.Errorf("ParseTimeout(%q) = %s, want %s", h, got, want)
		}
	}
}

func TestParseEvent(t *testing.T) {
	miniupnpd := `<?xml version="1.0"?>
<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><PossibleConnectionTypes>IP_Routed</PossibleConnectionTypes></e:property><e:property><ConnectionStatus>Connected</ConnectionStatus></e:property><e:property><ExternalIPAddress>198.51.100.7</ExternalIPAddress></e:property><e:property><PortMappingNumberOfEntries>0</PortMappingNumberOfEntries></e:property></e:propertyset>`
	vars, err := ParseEvent([]byte(miniupnpd))
	if err != nil || vars["ExternalIPAddress"] != "198.51.100.7" || vars["ConnectionStatus"] != "Connected" || len(vars) != 4 {
		t.Errorf("ParseEvent = %v, %v", vars, err)
	}
	for _, bad := range []string{"", "<x/>", `<e:propertyset xmlns:e="other"/>`, `<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><p/></e:propertyset>`,
		`<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><A><B/></A></e:property></e:propertyset>`, "<e:propertyset"} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("ParseEvent(%q) accepted", bad)
		}
	}
}

// FuzzParseEvent: what ParseEvent accepts, written again with EventBody,
// reads back the same; values stay bounded.
func FuzzParseEvent(f *testing.F) {
	f.Add(EventBody(map[string]string{"ExternalIPAddress": "198.51.100.7"}))
	f.Add([]byte(`<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><X>a&amp;b</X></e:property></e:propertyset>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		vars, err := ParseEvent(b)
		if err != nil {
			return
		}
		for k, v := range vars {
			if k == "" || len(v) > 1024 {
				t.Fatalf("variable %q = %d bytes", k, len(v))
			}
		}
		again, err := ParseEvent(EventBody(vars))
		if err != nil || !maps.Equal(again, vars) {
			t.Fatalf("round trip: %v then %v, %v", vars, again, err)
		}
	})
}

// TestEventCallbackLimits: the callback listener, which the whole LAN can
// reach, serves the box alone, a few connections at once and small
// events, and the box's events still arrive once the flood is gone.
func TestEventCallbackLimits(t *testing.T) {
	box := &genaBox{addr: "198.51.100.7"}
	ts := httptest.NewServer(box)
	defer ts.Close()
	ev, _ := url.Parse(ts.URL + "/evt/IPConn") // the box is 127.0.0.1
	got := make(chan netip.Addr, 10)
	b := &BoxEvents{Locate: func(context.Context) (*IGDService, error) {
		return &IGDService{EventURL: ev, Local: net.IPv4(127, 0, 0, 1), External: box.external}, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx, func(a netip.Addr) { got <- a }); close(done) }()
	defer func() { cancel(); <-done }()
	var callback string
	for i := 0; callback == ""; i++ { // until subscribed (bounded)
		if i > 100 {
			t.Fatal("no SUBSCRIBE")
		}
		time.Sleep(20 * time.Millisecond)
		box.mu.Lock()
		callback = box.callback
		box.mu.Unlock()
	}
	cb, _ := url.Parse(callback)
	// dial connects from src; held says whether the listener kept the
	// connection open (a second without being closed).
	dial := func(src string) (c net.Conn, held bool) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", cb.Host)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return c, errors.As(err, &ne) && ne.Timeout()
	}
	if c, held := dial("127.0.0.2"); held {
		t.Error("a connection from another LAN host than the box was served")
	} else {
		c.Close()
	}
	// Four at once from one source (the box's own keep-alive connection
	// of its first NOTIFY may hold one of them).
	var conns []net.Conn
	var held []bool
	for range 5 {
		c, h := dial("127.0.0.1")
		conns, held = append(conns, c), append(held, h)
	}
	if n := strings.Count(fmt.Sprint(held), "true"); !held[0] || held[4] || n > 4 {
		t.Errorf("5 connections from the box: held %v, want the first held and at most 4", held)
	}
	for _, c := range conns {
		c.Close()
	}
	// An event larger than any IGD sends is refused.
	big := append(EventBody(map[string]string{"ExternalIPAddress": "203.0.113.1"}), bytes.Repeat([]byte(" "), 64<<10)...)
	req, _ := http.NewRequest("NOTIFY", callback, bytes.NewReader(big))
	req.Header.Set("NT", "upnp:event")
	req.Header.Set("NTS", "upnp:propchange")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("an event of %d bytes: %s, want 413", len(big), resp.Status)
	}
	box.set("198.51.100.8")
	select {
	case a := <-got:
		if a.String() != "198.51.100.8" {
			t.Fatalf("reported %s", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the box's event after the flood was not reported")
	}
}
