package hidups

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// EatonVendorID is the USB vendor ID of Eaton (ex MGE) UPSes.
const EatonVendorID = 0x0463

// Find returns the /dev path of the UPS's hidraw node, looking at
// sysfsRoot/class/hidraw/*/device (sysfsRoot is "/sys" on a live
// system). A device with USB vendor 0463 (Eaton) wins; otherwise the
// first device whose report descriptor has Power Device (0x84) usages.
// When nothing matches, the error lists every device seen.
func Find(sysfsRoot string) (string, error) {
	dir := filepath.Join(sysfsRoot, "class", "hidraw")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("hidups: no hidraw devices: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Slice(names, func(i, j int) bool { return hidrawLess(names[i], names[j]) })
	var seen []string
	pdc := ""
	for _, n := range names {
		ue, err := os.ReadFile(filepath.Join(dir, n, "device", "uevent"))
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s (uevent: %v)", n, err))
			continue
		}
		kv := parseUevent(string(ue))
		bus, vendor, product, ok := parseHIDID(kv["HID_ID"])
		if ok && vendor == EatonVendorID {
			return "/dev/" + n, nil
		}
		desc := "no descriptor"
		if rd, err := os.ReadFile(filepath.Join(dir, n, "device", "report_descriptor")); err == nil {
			d, err := ParseDescriptor(rd)
			switch {
			case err != nil:
				desc = "bad descriptor: " + err.Error()
			case isPowerDevice(d):
				desc = "power device"
				if pdc == "" {
					pdc = "/dev/" + n
				}
			default:
				desc = fmt.Sprintf("application %08x", d.Application)
			}
		}
		id := kv["HID_ID"]
		if ok {
			id = fmt.Sprintf("bus %04x %04x:%04x", bus, vendor, product)
		}
		seen = append(seen, fmt.Sprintf("%s (%s %q, %s)", n, id, kv["HID_NAME"], desc))
	}
	if pdc != "" {
		return pdc, nil
	}
	if len(seen) == 0 {
		return "", fmt.Errorf("hidups: no hidraw devices in %s", dir)
	}
	return "", fmt.Errorf("hidups: no UPS (USB vendor %04x or HID Power Device) among %s", EatonVendorID, strings.Join(seen, ", "))
}

func hidrawLess(a, b string) bool {
	na, ea := strconv.Atoi(strings.TrimPrefix(a, "hidraw"))
	nb, eb := strconv.Atoi(strings.TrimPrefix(b, "hidraw"))
	if ea == nil && eb == nil {
		return na < nb
	}
	return a < b
}

func parseUevent(s string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// parseHIDID parses the uevent's HID_ID, "0003:00000463:0000FFFF".
func parseHIDID(s string) (bus, vendor, product uint32, ok bool) {
	p := strings.Split(s, ":")
	if len(p) != 3 {
		return 0, 0, 0, false
	}
	var v [3]uint64
	for i := range p {
		x, err := strconv.ParseUint(p[i], 16, 32)
		if err != nil {
			return 0, 0, 0, false
		}
		v[i] = x
	}
	return uint32(v[0]), uint32(v[1]), uint32(v[2]), true
}
