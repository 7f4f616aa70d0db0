package publicip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// igd is one WANIPConnection service of the box.
type igd struct {
	event    url.URL // the service's eventSubURL
	external func(ctx context.Context) (string, error)
}

// Gateways returns the gateways of the gate's default routes, IPv4 and
// IPv6: the box is one of them.
func Gateways() ([]netip.Addr, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("default routes: %w", err)
	}
	var gws []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			gws = append(gws, a.Unmap())
		}
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		add(r.Gw)
		for _, nh := range r.MultiPath {
			add(nh.Gw)
		}
	}
	return gws, nil
}

// discoverIGDs finds the box's WANIPConnection services by SSDP (version
// 2, else 1). Only the default gateway's answers count, and only its
// description is fetched: any host on the LAN can answer SSDP as an IGD,
// and what it said would be published as the site's address (and its
// description, at a URL of its choosing, read). The searches hear the
// gateways alone (a socket filter: see search); when no gateway answered,
// one more search hears everyone, and the others are named in the error.
// A kernel that refuses the filter is warned of on log (nil: not logged),
// once per discovery: the searches then hear everyone.
func discoverIGDs(ctx context.Context, gateways func() ([]netip.Addr, error), log *slog.Logger) ([]igd, error) {
	return discoverWith(ctx, gateways, log, search)
}

// searchFunc is search's signature: discoverWith is given it, a test a
// fake.
type searchFunc func(ctx context.Context, st string, gws []netip.Addr, wait time.Duration, onlyGateways bool) (answers, error)

// discoverWith is discoverIGDs searching with searchFn.
func discoverWith(ctx context.Context, gateways func() ([]netip.Addr, error), log *slog.Logger, searchFn searchFunc) ([]igd, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if gateways == nil {
		gateways = Gateways
	}
	gws, err := gateways()
	if err != nil {
		return nil, err
	}
	if len(gws) == 0 {
		return nil, errors.New("no default route (yet): the box is the UPnP IGD at the default gateway")
	}
	type version struct {
		st      string
		clients func(context.Context, *url.URL) ([]igd, error)
	}
	versions := []version{
		{internetgateway2.URN_WANIPConnection_2, func(ctx context.Context, loc *url.URL) ([]igd, error) {
			cs, err := internetgateway2.NewWANIPConnection2ClientsByURLCtx(ctx, loc)
			return igdsOf(cs), err
		}},
		{internetgateway2.URN_WANIPConnection_1, func(ctx context.Context, loc *url.URL) ([]igd, error) {
			cs, err := internetgateway2.NewWANIPConnection1ClientsByURLCtx(ctx, loc)
			return igdsOf(cs), err
		}},
	}
	var errs, ignored []string
	heard := false  // a gateway answered
	warned := false // of an unfiltered search
	try := func(v version, onlyGateways bool) []igd {
		a, err := searchFn(ctx, v.st, gws, searchWait, onlyGateways)
		if err != nil {
			errs = append(errs, err.Error())
			return nil
		}
		if a.unfiltered != nil && !warned {
			log.Warn(UnfilteredWarning, "err", a.unfiltered)
			warned = true
		}
		for _, o := range a.others {
			if !slices.Contains(ignored, o) {
				ignored = append(ignored, o)
			}
		}
		var found []igd
		for _, loc := range a.boxes {
			heard = true
			ds, err := v.clients(ctx, loc)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", loc, err))
			}
			found = append(found, ds...)
		}
		return found
	}
	for _, v := range versions {
		if found := try(v, true); len(found) > 0 {
			return found, nil
		}
	}
	if !heard {
		// No gateway answered through the filter: ask once more, hearing
		// everyone, to name who else answers (or find a box that
		// answered late).
		if found := try(versions[len(versions)-1], false); len(found) > 0 {
			return found, nil
		}
	}
	switch {
	case len(ignored) > 0:
		errs = append([]string{fmt.Sprintf("no UPnP Internet Gateway Device at the default gateway %v; ignored the one(s) at %s", gws, strings.Join(ignored, ", "))}, errs...)
	case len(errs) == 0:
		return nil, errors.New("no UPnP Internet Gateway Device answered on the LAN (is UPnP enabled on the box?)")
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

// igdsOf are the services of the clients of one WANIPConnection version.
func igdsOf[C interface {
	GetServiceClient() *goupnp.ServiceClient
	GetExternalIPAddressCtx(context.Context) (string, error)
}](cs []C) []igd {
	var ds []igd
	for _, c := range cs {
		sc := c.GetServiceClient()
		ds = append(ds, igd{sc.Service.EventSubURL.URL, c.GetExternalIPAddressCtx})
	}
	return ds
}

// SSDP (UPnP Device Architecture 1.1 §1.3): an M-SEARCH multicast to
// ssdpGroup, answered by unicast datagrams.
var ssdpGroup = netip.MustParseAddrPort("239.255.255.250:1900")

const (
	searchWait = 2 * time.Second // how long answers are awaited (MX)
	maxAnswers = 8               // distinct answers kept, and sources named
)

// answers are what one search heard.
type answers struct {
	boxes  []*url.URL // description URLs answered from, and on, a gateway
	others []string   // the other answerers (their addresses, or the hosts they named)
	// unfiltered is why a search asked to hear the gateways alone heard
	// everyone: the kernel refused the socket filter.
	unfiltered error
}

// UnfilteredWarning is logged when the kernel refuses the search socket's
// filter (the journey checks that the image's kernel never does).
const UnfilteredWarning = "SSDP answers are heard unfiltered: a LAN host flooding them can delay finding the box"

// search multicasts an M-SEARCH for st (three times) to SSDP's group and
// listens wait for answers. A datagram from anyone but a gateway is not
// even parsed (its source is noted): any LAN host can answer, as often as
// it likes. At most maxAnswers of each are kept. With onlyGateways, the
// kernel drops those datagrams before they are queued (a socket filter),
// so that a host flooding answers cannot fill the socket's buffer and
// crowd the box's answer out; nobody else is then heard, or noted.
func search(ctx context.Context, st string, gws []netip.Addr, wait time.Duration, onlyGateways bool) (answers, error) {
	return searchAt(ctx, ssdpGroup, st, gws, wait, onlyGateways)
}

// searchAt is search sending to group, which a test makes a unicast
// address.
func searchAt(ctx context.Context, group netip.AddrPort, st string, gws []netip.Addr, wait time.Duration, onlyGateways bool) (answers, error) {
	var a answers
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return a, fmt.Errorf("SSDP: %w", err)
	}
	defer c.Close()
	if onlyGateways {
		// A kernel without socket filters is heard unfiltered (and said
		// so): the sources are checked below all the same.
		a.unfiltered = keepOnlyFrom(c, gws)
	}
	end := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	c.SetReadDeadline(end)
	req := fmt.Sprintf("M-SEARCH * HTTP/1.1\r\nHOST: %s\r\nMAN: \"ssdp:discover\"\r\nMX: %d\r\nST: %s\r\n\r\n",
		group, max(1, int(wait/time.Second)), st)
	for range 3 {
		if _, err := c.WriteToUDPAddrPort([]byte(req), group); err != nil {
			return a, fmt.Errorf("SSDP search for %s: %w", st, err)
		}
	}
	note := func(s string) {
		if len(a.others) < maxAnswers && !slices.Contains(a.others, s) {
			a.others = append(a.others, s)
		}
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return a, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return a, nil
			}
			return a, fmt.Errorf("SSDP search for %s: %w", st, err)
		}
		src := from.Addr().Unmap()
		if !slices.Contains(gws, src) {
			note(src.String())
			continue
		}
		loc, err := ParseSSDPAnswer(buf[:n], st)
		if err != nil {
			continue
		}
		if !onGateway(loc, gws) {
			note(loc.Hostname())
			continue
		}
		if len(a.boxes) < maxAnswers && !slices.ContainsFunc(a.boxes, func(u *url.URL) bool { return u.String() == loc.String() }) {
			a.boxes = append(a.boxes, loc)
		}
	}
}

// keepOnlyFrom makes the kernel drop every datagram of c (an IPv4 UDP
// socket) that does not come from one of gws' IPv4 addresses (at most
// 250 of them), before it is queued: a classic BPF socket filter.
func keepOnlyFrom(c *net.UDPConn, gws []netip.Addr) error {
	const (
		netOff = 0xfff00000 // SKF_NET_OFF (-0x100000): offsets from the IP header
		keep   = 0xffffffff // the whole datagram
	)
	var srcs []uint32
	for _, g := range gws {
		if g.Is4() && len(srcs) < 250 {
			srcs = append(srcs, binary.BigEndian.Uint32(g.AsSlice()))
		}
	}
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: netOff + 12}} // the source address
	for i, src := range srcs {
		// Equal: on to the last instruction (keep); else the next.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: uint8(len(srcs) - i), K: src})
	}
	prog = append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0}, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: keep})
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("SSDP: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return fmt.Errorf("SSDP: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("SSDP: filtering answers by source: %w", serr)
	}
	return nil
}

// ParseSSDPAnswer reads an answer to an M-SEARCH for st (an HTTP 200
// response in one datagram, UDA 1.1 §1.3.3) and returns its LOCATION, an
// http URL with a host.
func ParseSSDPAnswer(b []byte, st string) (*url.URL, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return nil, fmt.Errorf("SSDP answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SSDP answer: status %q", resp.Status)
	}
	if got := resp.Header.Get("ST"); got != st {
		return nil, fmt.Errorf("SSDP answer for %.64q, not %s", got, st)
	}
	loc, err := url.Parse(resp.Header.Get("LOCATION"))
	if err != nil || loc.Scheme != "http" || loc.Hostname() == "" {
		return nil, fmt.Errorf("SSDP answer: LOCATION %.128q is not an http URL", resp.Header.Get("LOCATION"))
	}
	return loc, nil
}

// onGateway says whether loc is served from one of gws (its host an
// address, not a name).
func onGateway(loc *url.URL, gws []netip.Addr) bool {
	a, err := netip.ParseAddr(loc.Hostname())
	return err == nil && slices.Contains(gws, a.Unmap().WithZone(""))
}
