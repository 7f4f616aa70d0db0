package publicip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/httpu"
	"github.com/huin/goupnp/ssdp"
	"github.com/vishvananda/netlink"
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
// 2, else 1). Only a device at one of the default gateways counts, and
// only its description is fetched: any host on the LAN can answer SSDP as
// an IGD, and what it said would be published as the site's address (and
// its description, at a URL of its choosing, read). The others are named
// in the error when no box is left.
func discoverIGDs(ctx context.Context, gateways func() ([]netip.Addr, error)) ([]igd, error) {
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
	var errs, ignored []string
	for _, v := range []struct {
		st      string
		clients func(context.Context, *url.URL) ([]igd, error)
	}{
		{internetgateway2.URN_WANIPConnection_2, func(ctx context.Context, loc *url.URL) ([]igd, error) {
			cs, err := internetgateway2.NewWANIPConnection2ClientsByURLCtx(ctx, loc)
			return igdsOf(cs), err
		}},
		{internetgateway2.URN_WANIPConnection_1, func(ctx context.Context, loc *url.URL) ([]igd, error) {
			cs, err := internetgateway2.NewWANIPConnection1ClientsByURLCtx(ctx, loc)
			return igdsOf(cs), err
		}},
	} {
		locs, err := search(ctx, v.st)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		boxes, others := atGateway(locs, gws)
		for _, o := range others {
			if !slices.Contains(ignored, o) {
				ignored = append(ignored, o)
			}
		}
		var found []igd
		for _, loc := range boxes {
			ds, err := v.clients(ctx, loc)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", loc, err))
			}
			found = append(found, ds...)
		}
		if len(found) > 0 {
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

// search asks the LAN for st by SSDP (for two seconds) and returns the
// description URLs that answered.
func search(ctx context.Context, st string) ([]*url.URL, error) {
	hc, err := httpu.NewHTTPUClient()
	if err != nil {
		return nil, fmt.Errorf("SSDP: %w", err)
	}
	defer hc.Close()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resps, err := ssdp.RawSearch(sctx, hc, st, 3)
	if err != nil {
		return nil, fmt.Errorf("SSDP search for %s: %w", st, err)
	}
	var locs []*url.URL
	for _, r := range resps {
		if loc, err := r.Location(); err == nil {
			locs = append(locs, loc)
		}
	}
	return locs, nil
}

// atGateway splits locs into those served from one of gws, and the hosts
// of the others.
func atGateway(locs []*url.URL, gws []netip.Addr) (boxes []*url.URL, others []string) {
	for _, loc := range locs {
		host := loc.Hostname()
		a, err := netip.ParseAddr(host)
		if err == nil && slices.Contains(gws, a.Unmap().WithZone("")) {
			boxes = append(boxes, loc)
			continue
		}
		if !slices.Contains(others, host) {
			others = append(others, host)
		}
	}
	return boxes, others
}
