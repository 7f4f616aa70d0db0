// Command fakeigd is a test peer standing in for the ISP box's UPnP
// Internet Gateway Device, written from the UPnP specifications (Device
// Architecture 1.1: SSDP search answers, the device description, SOAP
// control, GENA eventing; IGD 1 WANIPConnection:1): it answers
// GetExternalIPAddress with the address of its WAN interface and, like
// miniupnpd, sends a NOTIFY with ExternalIPAddress to every subscriber when
// that address changes (it looks every 100 ms).
//
// It exists because Debian's miniupnpd refuses to report a reserved
// address, and the tests may only use reserved ranges.
package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	uuid    = "uuid:6b2a1f0e-3c1d-4a77-9d0e-fa4e1dbeef01"
	svcType = "urn:schemas-upnp-org:service:WANIPConnection:1"
	devType = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
)

type sub struct {
	callback string
	seq      int
	expires  time.Time
}

type igd struct {
	mu   sync.Mutex
	wan  string // current WAN address ("" when none)
	subs map[string]*sub
	next int
}

func main() {
	lanIf := flag.String("lan", "lan0", "LAN interface (SSDP and HTTP)")
	wanIf := flag.String("wan", "wan0", "WAN interface whose address is reported")
	port := flag.Int("port", 5000, "HTTP port")
	flag.Parse()
	ifc, err := net.InterfaceByName(*lanIf)
	if err != nil {
		log.Fatal(err)
	}
	lanIP := ifaceIPv4(*lanIf)
	if lanIP == "" {
		log.Fatalf("no IPv4 address on %s", *lanIf)
	}
	g := &igd{subs: map[string]*sub{}, wan: ifaceIPv4(*wanIf)}
	base := fmt.Sprintf("http://%s:%d", lanIP, *port)

	mux := http.NewServeMux()
	mux.HandleFunc("/rootDesc.xml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprintf(w, rootDesc, base)
		log.Printf("description fetched by %s", r.RemoteAddr)
	})
	mux.HandleFunc("/ctl/IPConn", g.control)
	mux.HandleFunc("/evt/IPConn", g.event)
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", lanIP, *port))
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal((&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(ln)) }()
	go g.ssdp(ifc, base+"/rootDesc.xml")
	go g.watch(*wanIf)
	log.Printf("fakeigd listening on %s (WAN %s: %q)", base, *wanIf, g.wan)
	select {}
}

func ifaceIPv4(name string) string {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	as, _ := ifc.Addrs()
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// ssdp answers M-SEARCH requests for the gateway, its WANIPConnection,
// root devices and ssdp:all (DA 1.1 §1.3.3).
func (g *igd) ssdp(ifc *net.Interface, location string) {
	c, err := net.ListenMulticastUDP("udp4", ifc, &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 1900})
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		req := string(buf[:n])
		if !strings.HasPrefix(req, "M-SEARCH * HTTP/1.1") {
			continue
		}
		st := ""
		for _, line := range strings.Split(req, "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "ST") {
				st = strings.TrimSpace(v)
			}
		}
		var sts []string
		switch st {
		case "ssdp:all":
			sts = []string{"upnp:rootdevice", devType, svcType}
		case "upnp:rootdevice", devType, svcType:
			sts = []string{st}
		}
		for _, s := range sts {
			usn := uuid + "::" + s
			msg := fmt.Sprintf("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: %s\r\nSERVER: Linux/6 UPnP/1.1 fakeigd/1\r\nST: %s\r\nUSN: %s\r\n\r\n", location, s, usn)
			c.WriteTo([]byte(msg), from)
		}
	}
}

// control answers the SOAP action GetExternalIPAddress (IGD
// WANIPConnection:1 §2.4.18); every other action is a UPnP error 401.
func (g *igd) control(w http.ResponseWriter, r *http.Request) {
	action := strings.Trim(r.Header.Get("SOAPAction"), `"`)
	io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	if action != svcType+"#GetExternalIPAddress" {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>401</errorCode><errorDescription>Invalid Action</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`)
		return
	}
	g.mu.Lock()
	wan := g.wan
	g.mu.Unlock()
	var esc bytes.Buffer
	xml.EscapeText(&esc, []byte(wan))
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="%s"><NewExternalIPAddress>%s</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`, svcType, esc.String())
}

// event handles SUBSCRIBE (new and renewal) and UNSUBSCRIBE (DA 1.1 §4.1).
func (g *igd) event(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r.Method {
	case "SUBSCRIBE":
		sid := r.Header.Get("SID")
		if sid != "" {
			s, ok := g.subs[sid]
			if !ok || r.Header.Get("CALLBACK") != "" || r.Header.Get("NT") != "" {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			s.expires = time.Now().Add(1800 * time.Second)
		} else {
			cb := r.Header.Get("CALLBACK")
			if r.Header.Get("NT") != "upnp:event" || !strings.HasPrefix(cb, "<http://") {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			g.next++
			sid = fmt.Sprintf("uuid:fakeigd-sub-%d", g.next)
			s := &sub{callback: strings.Trim(strings.SplitN(cb, ">", 2)[0], "<"), expires: time.Now().Add(1800 * time.Second)}
			g.subs[sid] = s
			log.Printf("subscribed %s: %s", sid, s.callback)
			// The initial event follows the answer (§4.2.1).
			go func(wan string) { time.Sleep(20 * time.Millisecond); g.notify(sid, s.callback, 0, wan) }(g.wan)
		}
		w.Header().Set("SID", sid)
		w.Header().Set("TIMEOUT", "Second-1800")
		w.Header().Set("SERVER", "Linux/6 UPnP/1.1 fakeigd/1")
	case "UNSUBSCRIBE":
		delete(g.subs, r.Header.Get("SID"))
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (g *igd) notify(sid, callback string, seq int, wan string) {
	var esc bytes.Buffer
	xml.EscapeText(&esc, []byte(wan))
	body := fmt.Sprintf(`<?xml version="1.0"?>`+"\n"+`<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><ConnectionStatus>Connected</ConnectionStatus></e:property><e:property><ExternalIPAddress>%s</ExternalIPAddress></e:property></e:propertyset>`, esc.String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "NOTIFY", callback, strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	req.Header.Set("NT", "upnp:event")
	req.Header.Set("NTS", "upnp:propchange")
	req.Header.Set("SID", sid)
	req.Header.Set("SEQ", fmt.Sprint(seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Printf("NOTIFY %s: %v", sid, err)
		return
	}
	resp.Body.Close()
	log.Printf("NOTIFY %s seq %d ExternalIPAddress=%s: %s", sid, seq, wan, resp.Status)
}

// watch announces each change of the WAN interface's address.
func (g *igd) watch(wanIf string) {
	for range time.Tick(100 * time.Millisecond) {
		a := ifaceIPv4(wanIf)
		g.mu.Lock()
		if a == g.wan {
			g.mu.Unlock()
			continue
		}
		g.wan = a
		now := time.Now()
		for sid, s := range g.subs {
			if now.After(s.expires) {
				delete(g.subs, sid)
				continue
			}
			s.seq++
			go g.notify(sid, s.callback, s.seq, a)
		}
		g.mu.Unlock()
		log.Printf("WAN address now %q", a)
	}
}

const rootDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>1</minor></specVersion>
<URLBase>%[1]s</URLBase>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>fakeigd</friendlyName><manufacturer>gate tests</manufacturer><modelName>fakeigd</modelName>
<UDN>` + uuid + `</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<friendlyName>WAN</friendlyName><manufacturer>gate tests</manufacturer><modelName>fakeigd</modelName>
<UDN>uuid:6b2a1f0e-3c1d-4a77-9d0e-fa4e1dbeef02</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<friendlyName>WAN connection</friendlyName><manufacturer>gate tests</manufacturer><modelName>fakeigd</modelName>
<UDN>uuid:6b2a1f0e-3c1d-4a77-9d0e-fa4e1dbeef03</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
`
