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

	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/vishvananda/netlink"
)

// igd is one WANIPConnection service found by SSDP.
type igd struct {
	location *url.URL // the root device description's URL
	event    url.URL  // the service's eventSubURL
	local    net.IP   // the gate's address the answer came to
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
// 2, else 1). Only a device that answers from one of gateways counts: any
// host on the LAN can answer SSDP as an IGD, and what it said would be
// published as the site's address. The others are named in the error when
// none is left.
func discoverIGDs(ctx context.Context, gateways func() ([]netip.Addr, error)) ([]igd, error) {
	if gateways == nil {
		gateways = Gateways
	}
	var errs []string
	var found []igd
	clients2, _, err := internetgateway2.NewWANIPConnection2ClientsCtx(ctx)
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, c := range clients2 {
		found = append(found, igd{c.Location, c.Service.EventSubURL.URL, c.LocalAddr(), c.GetExternalIPAddressCtx})
	}
	if len(found) == 0 {
		clients1, _, err := internetgateway2.NewWANIPConnection1ClientsCtx(ctx)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for _, c := range clients1 {
			found = append(found, igd{c.Location, c.Service.EventSubURL.URL, c.LocalAddr(), c.GetExternalIPAddressCtx})
		}
	}
	if len(found) == 0 {
		if len(errs) > 0 {
			return nil, fmt.Errorf("UPnP discovery: %s", strings.Join(errs, "; "))
		}
		return nil, errors.New("no UPnP Internet Gateway Device answered on the LAN (is UPnP enabled on the box?)")
	}
	gws, err := gateways()
	if err != nil {
		return nil, err
	}
	boxes, others := atGateway(found, gws)
	if len(boxes) == 0 {
		return nil, fmt.Errorf("no UPnP Internet Gateway Device at the default gateway %v; ignored the one(s) at %s", gws, strings.Join(others, ", "))
	}
	return boxes, nil
}

// atGateway splits found into the devices whose description is served
// from one of gws, and the hosts of the others.
func atGateway(found []igd, gws []netip.Addr) (boxes []igd, others []string) {
	for _, d := range found {
		host := "(no location)"
		if d.location != nil {
			host = d.location.Hostname()
		}
		a, err := netip.ParseAddr(host)
		if err == nil && slices.Contains(gws, a.Unmap().WithZone("")) {
			boxes = append(boxes, d)
			continue
		}
		if !slices.Contains(others, host) {
			others = append(others, host)
		}
	}
	return boxes, others
}
