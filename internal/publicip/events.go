package publicip

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gate/internal/httpserve"
)

// BoxEvents follows the box's WAN address as the box announces it: it
// subscribes to the events of the IGD's WANIPConnection service (UPnP
// Device Architecture 1.1 §4, GENA: SUBSCRIBE with a CALLBACK URL, then
// NOTIFY requests carrying the evented ExternalIPAddress), renews the
// subscription at half its lifetime, and also asks the box every Poll
// (GetExternalIPAddress) for boxes that do not send events. Without a box
// answering on the LAN it looks again every minute.
//
// It is the one way the daemons learn of a WAN change at once: the vpn
// daemon makes the tunnel talk to its hub (which learns the gate's new
// address from that packet), the dyndns daemon checks its sources.
type BoxEvents struct {
	Log *slog.Logger
	// Poll is how often the box is also asked; 0: never (events only).
	Poll time.Duration
	// Locate finds the box's service (nil: SSDP discovery on the LAN).
	Locate func(ctx context.Context) (*IGDService, error)
}

// IGDService is where a box's WANIPConnection service is reached.
type IGDService struct {
	EventURL *url.URL // the service's eventSubURL
	Local    net.IP   // the gate's address towards the box (callbacks listen there)
	// External asks the box its WAN address (GetExternalIPAddress).
	External func(ctx context.Context) (string, error)
}

// LocateIGD finds the box's WANIPConnection (version 2, else 1) by SSDP,
// at the default gateway alone (see discoverIGDs, which warns on log).
func LocateIGD(ctx context.Context, log *slog.Logger) (*IGDService, error) {
	found, err := discoverIGDs(ctx, nil, log)
	if err != nil {
		return nil, err
	}
	ev := found[0].event
	if ev.Host == "" {
		return nil, errors.New("the box's WANIPConnection has no eventSubURL")
	}
	// The gate's address towards the box: the callback listens there.
	c, err := net.Dial("udp", net.JoinHostPort(ev.Hostname(), cmp.Or(ev.Port(), "80")))
	if err != nil {
		return nil, fmt.Errorf("route to the box at %s: %v", ev.Host, err)
	}
	local := c.LocalAddr().(*net.UDPAddr).IP
	c.Close()
	return &IGDService{EventURL: &ev, Local: local, External: found[0].external}, nil
}

// Run follows the box until ctx is done, calling changed (from Run's
// goroutine) with each new WAN address after the first one it learns.
func (b *BoxEvents) Run(ctx context.Context, changed func(netip.Addr)) {
	log := b.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	locate := b.Locate
	if locate == nil {
		locate = func(ctx context.Context) (*IGDService, error) { return LocateIGD(ctx, log) }
	}
	var last netip.Addr
	lastErr := ""
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		svc, err := locate(lctx)
		cancel()
		if err != nil {
			if err.Error() != lastErr {
				log.Info("no UPnP box to follow: a new WAN address is seen only by the daemon's own checks", "err", err, "retry_in", "1m")
				lastErr = err.Error()
			}
			sleep(ctx, time.Minute)
			continue
		}
		lastErr = ""
		err = b.follow(ctx, log, svc, &last, changed)
		if ctx.Err() != nil {
			return
		}
		log.Warn("following the box's WAN address", "box", svc.EventURL.Host, "err", err, "retry_in", "5s")
		sleep(ctx, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// eventPath is the callback's path on the gate.
const eventPath = "/gate/wan-events"

// follow subscribes once and reports addresses until the subscription
// cannot be renewed or ctx is done.
func (b *BoxEvents) follow(ctx context.Context, log *slog.Logger, svc *IGDService, last *netip.Addr, changed func(netip.Addr)) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(svc.Local.String(), "0"))
	if err != nil {
		return fmt.Errorf("callback listener on %s: %w", svc.Local, err)
	}
	addrs := make(chan string, 8)
	sctx, stopServing := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		httpserve.Serve(sctx, ln, eventHandler(addrs), callbackLimits(svc.EventURL, log))
	}()
	defer func() { stopServing(); <-served }()
	callback := "http://" + ln.Addr().String() + eventPath

	sid, lifetime, err := subscribe(ctx, svc.EventURL, callback, "")
	if err != nil {
		return err
	}
	log.Info("following the box's WAN address", "box", svc.EventURL.Host, "events", "subscribed", "renew_in", (lifetime / 2).Round(time.Second), "poll", b.Poll)
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		unsubscribe(uctx, svc.EventURL, sid)
	}()
	renew := time.NewTimer(max(lifetime/2, 10*time.Second))
	defer renew.Stop()
	var poll <-chan time.Time
	if b.Poll > 0 {
		t := time.NewTicker(b.Poll)
		defer t.Stop()
		poll = t.C
	}
	report := func(s, how string) {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			if s != "" {
				log.Warn("the box announced a malformed WAN address", "value", fmt.Sprintf("%.64q", s), "via", how)
			}
			return
		}
		a = a.Unmap()
		switch {
		case !last.IsValid():
			log.Info("box WAN address", "addr", a, "via", how)
		case a != *last:
			log.Info("the box's WAN address changed", "from", *last, "to", a, "via", how)
			*last = a
			changed(a)
			return
		}
		*last = a
	}
	if svc.External != nil {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if s, err := svc.External(gctx); err == nil {
			report(s, "poll")
		}
		cancel()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-addrs:
			s, a, _ := strings.Cut(m, " ")
			if s != sid {
				continue // an old or foreign subscription
			}
			report(a, "event")
		case <-poll:
			gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := svc.External(gctx)
			cancel()
			if err != nil {
				log.Warn("asking the box its WAN address", "err", err)
				continue
			}
			report(s, "poll")
		case <-renew.C:
			s, l, err := subscribe(ctx, svc.EventURL, "", sid)
			if err != nil {
				return fmt.Errorf("renewing the subscription: %w", err)
			}
			sid, lifetime = s, l
			renew.Reset(max(lifetime/2, 10*time.Second))
		}
	}
}

// eventHandler takes the box's NOTIFY requests at eventPath and passes
// each announced ExternalIPAddress on as "SID address" (dropped when
// addrs is full); Run's loop checks the SID, it knows the current one.
func eventHandler(addrs chan<- string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(eventPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "NOTIFY" {
			http.Error(w, "NOTIFY only", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("NT") != "upnp:event" || r.Header.Get("NTS") != "upnp:propchange" {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "event body: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		vars, err := ParseEvent(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if a, ok := vars["ExternalIPAddress"]; ok {
			select {
			case addrs <- r.Header.Get("SID") + " " + a:
			default:
			}
		}
	})
	return mux
}

// callbackLimits are the limits of the event callback's listener, which
// the whole LAN can reach: only the box at box's host may connect when
// that is an address (a NOTIFY comes from there), a few connections at
// once, and small, quick requests.
func callbackLimits(box *url.URL, log *slog.Logger) httpserve.Options {
	o := httpserve.Options{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteIdle: 10 * time.Second,
		IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10, MaxBodyBytes: 64 << 10, MaxConns: 8, PerSource: 4, Log: log}
	if a, err := netip.ParseAddr(box.Hostname()); err == nil {
		a = a.Unmap().WithZone("")
		o.Allow = func(src netip.Addr) bool { return src == a }
	}
	return o
}

// subscribeTimeout is the lifetime asked for a subscription.
const subscribeTimeout = 1800 * time.Second

// subscribe sends SUBSCRIBE: a new subscription with callback, or the
// renewal of sid. It returns the SID and the lifetime the box granted.
func subscribe(ctx context.Context, ev *url.URL, callback, sid string) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "SUBSCRIBE", ev.String(), nil)
	if err != nil {
		return "", 0, err
	}
	if sid == "" {
		req.Header.Set("CALLBACK", "<"+callback+">")
		req.Header.Set("NT", "upnp:event")
	} else {
		req.Header.Set("SID", sid)
	}
	req.Header.Set("TIMEOUT", "Second-"+strconv.Itoa(int(subscribeTimeout/time.Second)))
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("SUBSCRIBE %s: %w", ev, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("SUBSCRIBE %s: %s", ev, resp.Status)
	}
	got := resp.Header.Get("SID")
	if got == "" {
		return "", 0, fmt.Errorf("SUBSCRIBE %s: no SID in the answer", ev)
	}
	return got, ParseTimeout(resp.Header.Get("TIMEOUT")), nil
}

func unsubscribe(ctx context.Context, ev *url.URL, sid string) {
	req, err := http.NewRequestWithContext(ctx, "UNSUBSCRIBE", ev.String(), nil)
	if err != nil {
		return
	}
	req.Header.Set("SID", sid)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// ParseTimeout reads a GENA TIMEOUT header ("Second-1800", "Second-infinite"):
// the lifetime, between 20 s and a day (30 minutes when absent or
// malformed).
func ParseTimeout(h string) time.Duration {
	s, ok := strings.CutPrefix(strings.TrimSpace(h), "Second-")
	if !ok {
		return subscribeTimeout
	}
	if strings.EqualFold(s, "infinite") {
		return 24 * time.Hour
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return subscribeTimeout
	}
	return min(max(time.Duration(n)*time.Second, 20*time.Second), 24*time.Hour)
}

// ParseEvent reads the body of a GENA NOTIFY: an e:propertyset of
// e:property elements each holding one evented variable. It returns the
// variables by name (the last value of a name repeated wins).
func ParseEvent(body []byte) (map[string]string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	const ns = "urn:schemas-upnp-org:event-1-0"
	vars := map[string]string{}
	depth := 0
	var name string
	var val strings.Builder
	seenSet := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("event body: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if t.Name.Local != "propertyset" || t.Name.Space != ns {
					return nil, fmt.Errorf("event body: <%s> is not an %s propertyset", t.Name.Local, ns)
				}
				seenSet = true
			case 2:
				if t.Name.Local != "property" || t.Name.Space != ns {
					return nil, fmt.Errorf("event body: <%s> in the propertyset", t.Name.Local)
				}
			case 3:
				name = t.Name.Local
				val.Reset()
			default:
				return nil, fmt.Errorf("event body: variable %s holds elements", name)
			}
		case xml.EndElement:
			if depth == 3 {
				vars[name] = val.String()
			}
			depth--
		case xml.CharData:
			if depth == 3 {
				if val.Len()+len(t) > 1024 {
					return nil, fmt.Errorf("event body: variable %s longer than 1024 bytes", name)
				}
				val.Write(t)
			}
		}
	}
	if !seenSet {
		return nil, errors.New("event body: no propertyset")
	}
	return vars, nil
}

// EventBody is the NOTIFY body announcing vars (for boxes and tests).
func EventBody(vars map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n" + `<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">`)
	for k, v := range vars {
		b.WriteString("<e:property><" + k + ">")
		xml.EscapeText(&b, []byte(v))
		b.WriteString("</" + k + "></e:property>")
	}
	b.WriteString("</e:propertyset>\n")
	return b.Bytes()
}
