package hidups

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Device is the USB HID device the driver talks to; *Hidraw implements
// it over Linux hidraw, tests implement it with recorded reports.
//
// Reports are in hidraw's layout: when the descriptor declares report
// IDs, a report's first byte is its ID; when it does not, the report is
// just its data, except for SetFeature, whose first byte is always the
// report ID (0 without IDs).
type Device interface {
	// ReportDescriptor returns the HID report descriptor.
	ReportDescriptor() ([]byte, error)
	// GetFeature reads feature report id into buf (buf[0] is set to id
	// by the caller) and returns the number of bytes read.
	GetFeature(id uint8, buf []byte) (int, error)
	// SetFeature writes a feature report; buf[0] is the report ID.
	SetFeature(buf []byte) error
	// ReadInput reads the next input report into buf, waiting until one
	// arrives or ctx is done.
	ReadInput(ctx context.Context, buf []byte) (int, error)
}

// DeviceInfo is what a device may tell about itself besides reports.
type DeviceInfo struct {
	VendorID, ProductID   uint16
	Manufacturer, Product string
	Serial                string
}

// Informer is implemented by devices that know their USB identity
// (*Hidraw reads it from sysfs). It is optional.
type Informer interface {
	Info() DeviceInfo
}

// Errors that the NUT server maps to its error words.
var (
	ErrVarNotSupported = errors.New("variable not supported") // VAR-NOT-SUPPORTED
	ErrCmdNotSupported = errors.New("command not supported")  // CMD-NOT-SUPPORTED
	ErrInvalidValue    = errors.New("invalid value")          // INVALID-ARGUMENT
	ErrReadOnly        = errors.New("variable is read-only")  // READONLY
)

// DriverName is the value of driver.name.
const DriverName = "gate-hidups"

// Default delays, as NUT's usbhid-ups has them (offdelay, ondelay).
const (
	DefaultShutdownDelay = 20
	DefaultStartDelay    = 30
)

// UPS is a HID power device driven the way NUT's usbhid-ups does it.
type UPS struct {
	dev  Device
	desc *Descriptor
	info DeviceInfo

	mu            sync.Mutex
	delayShutdown int
	delayStart    int
	inputs        map[uint8][]byte // latest input report by ID
	// inputSize is the largest input report's length when a mapped
	// usage is only in input reports (Vars then drains them), else 0.
	inputSize int
}

// New reads and parses dev's report descriptor and checks that it is a
// power device (usage page 0x84 or 0x85 somewhere).
func New(dev Device) (*UPS, error) {
	raw, err := dev.ReportDescriptor()
	if err != nil {
		return nil, fmt.Errorf("hidups: reading report descriptor: %w", err)
	}
	d, err := ParseDescriptor(raw)
	if err != nil {
		return nil, fmt.Errorf("hidups: %w", err)
	}
	if !isPowerDevice(d) {
		return nil, fmt.Errorf("hidups: the %d-byte report descriptor has no Power Device (0x84) or Battery System (0x85) usages", len(raw))
	}
	u := &UPS{dev: dev, desc: d, delayShutdown: DefaultShutdownDelay, delayStart: DefaultStartDelay, inputs: map[uint8][]byte{}}
	if in, ok := dev.(Informer); ok {
		u.info = in.Info()
	}
	if u.hasInputOnly() {
		u.inputSize = 1
		for k := range d.ReportBits {
			if k.Kind == Input {
				u.inputSize = max(u.inputSize, d.ReportLen(Input, k.ID))
			}
		}
	}
	return u, nil
}

func isPowerDevice(d *Descriptor) bool {
	for _, f := range d.Fields {
		for _, n := range f.Path {
			if p := n >> 16; p == pagePowerDevice || p == pageBattery {
				return true
			}
		}
	}
	return false
}

// Descriptor returns the parsed report descriptor.
func (u *UPS) Descriptor() *Descriptor { return u.desc }

// Close closes the device if it has a Close method.
func (u *UPS) Close() error {
	if c, ok := u.dev.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// A mapping is one NUT variable read from the first usage path the
// device has, formatted with format.
type mapping struct {
	name   string
	paths  []string
	format string
}

// varMap follows NUT's mge-hid (Eaton) table first, then the generic
// HID PDC paths.
var varMap = []mapping{
	{"battery.charge", []string{"UPS.PowerSummary.RemainingCapacity", "UPS.BatterySystem.Battery.RemainingCapacity", "UPS.Battery.RemainingCapacity"}, "%.0f"},
	{"battery.charge.low", []string{"UPS.PowerSummary.RemainingCapacityLimit", "UPS.Battery.RemainingCapacityLimit"}, "%.0f"},
	{"battery.runtime", []string{"UPS.PowerSummary.RunTimeToEmpty", "UPS.Battery.RunTimeToEmpty"}, "%.0f"},
	{"battery.runtime.low", []string{"UPS.PowerSummary.RemainingTimeLimit", "UPS.Battery.RemainingTimeLimit"}, "%.0f"},
	{"battery.voltage", []string{"UPS.BatterySystem.Voltage", "UPS.PowerSummary.Voltage", "UPS.BatterySystem.Battery.Voltage", "UPS.Battery.Voltage"}, "%.1f"},
	{"input.voltage", []string{"UPS.PowerConverter.Input.[1].Voltage", "UPS.Input.Voltage", "UPS.PowerSummary.Input.Voltage"}, "%.1f"},
	{"output.voltage", []string{"UPS.PowerConverter.Output.Voltage", "UPS.Output.Voltage"}, "%.1f"},
	{"ups.load", []string{"UPS.PowerSummary.PercentLoad", "UPS.PowerConverter.Output.PercentLoad", "UPS.Output.PercentLoad"}, "%.0f"},
	{"ups.timer.shutdown", []string{"UPS.PowerSummary.DelayBeforeShutdown", "UPS.Output.DelayBeforeShutdown"}, "%.0f"},
	{"ups.timer.start", []string{"UPS.PowerSummary.DelayBeforeStartup", "UPS.Output.DelayBeforeStartup"}, "%.0f"},
}

// Internal status bits, collected from the device before they become NUT
// flags (as NUT's usbhid-ups does).
const (
	stOnline = 1 << iota
	stDischarging
	stCharging
	stLowBatt
	stTimeLimitExpired
	stShutdownImminent
	stOverload
	stReplaceBatt
	stTrim
	stBoost
	stGood
	stFullyCharged
)

type statusMapping struct {
	paths []string
	bit   int
}

var statusMap = []statusMapping{
	{[]string{"UPS.PowerSummary.PresentStatus.ACPresent", "UPS.PresentStatus.ACPresent", "UPS.Battery.PresentStatus.ACPresent"}, stOnline},
	{[]string{"UPS.PowerSummary.PresentStatus.Discharging", "UPS.PresentStatus.Discharging", "UPS.Battery.PresentStatus.Discharging"}, stDischarging},
	{[]string{"UPS.PowerSummary.PresentStatus.Charging", "UPS.PresentStatus.Charging", "UPS.Battery.PresentStatus.Charging"}, stCharging},
	{[]string{"UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", "UPS.PresentStatus.BelowRemainingCapacityLimit", "UPS.Battery.PresentStatus.BelowRemainingCapacityLimit"}, stLowBatt},
	{[]string{"UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired", "UPS.PresentStatus.RemainingTimeLimitExpired"}, stTimeLimitExpired},
	{[]string{"UPS.PowerSummary.PresentStatus.ShutdownImminent", "UPS.PresentStatus.ShutdownImminent"}, stShutdownImminent},
	{[]string{"UPS.PowerSummary.PresentStatus.Overload", "UPS.PowerConverter.Output.Overload.[1].PresentStatus.OverThreshold", "UPS.Output.PresentStatus.Overload", "UPS.PresentStatus.Overload"}, stOverload},
	{[]string{"UPS.PowerSummary.PresentStatus.NeedReplacement", "UPS.PresentStatus.NeedReplacement", "UPS.Battery.PresentStatus.NeedReplacement"}, stReplaceBatt},
	{[]string{"UPS.PowerConverter.Input.[1].PresentStatus.Buck", "UPS.PowerSummary.PresentStatus.Buck", "UPS.Output.PresentStatus.Buck", "UPS.PresentStatus.Buck"}, stTrim},
	{[]string{"UPS.PowerConverter.Input.[1].PresentStatus.Boost", "UPS.PowerSummary.PresentStatus.Boost", "UPS.Output.PresentStatus.Boost", "UPS.PresentStatus.Boost"}, stBoost},
	{[]string{"UPS.PowerSummary.PresentStatus.Good", "UPS.PresentStatus.Good"}, stGood},
	{[]string{"UPS.PowerSummary.PresentStatus.FullyCharged", "UPS.PresentStatus.FullyCharged", "UPS.Battery.PresentStatus.FullyCharged"}, stFullyCharged},
}

// field returns the field for the first path the device has, preferring
// a Feature field (readable on demand) to an Input one.
func (u *UPS) field(paths []string) *Field {
	for _, p := range paths {
		if f := u.desc.Find(Feature, p); f != nil {
			return f
		}
		if f := u.desc.Find(Input, p); f != nil {
			return f
		}
	}
	return nil
}

// reader reads each report at most once per Vars call.
type reader struct {
	u        *UPS
	features map[uint8][]byte
	errs     map[uint8]error
}

func (r *reader) report(f *Field) ([]byte, error) {
	if f.Kind == Input {
		rep, ok := r.u.inputs[f.ReportID]
		if !ok {
			return nil, fmt.Errorf("no input report %d received yet", f.ReportID)
		}
		return rep, nil
	}
	if rep, ok := r.features[f.ReportID]; ok {
		return rep, nil
	}
	if err, ok := r.errs[f.ReportID]; ok {
		return nil, err
	}
	rep, err := r.u.getFeature(f.ReportID)
	if err != nil {
		r.errs[f.ReportID] = err
		return nil, err
	}
	r.features[f.ReportID] = rep
	return rep, nil
}

func (r *reader) value(f *Field) (float64, error) {
	rep, err := r.report(f)
	if err != nil {
		return 0, err
	}
	return r.u.desc.Value(f, rep)
}

// getFeature reads a feature report, with the ID byte first when the
// descriptor uses IDs.
func (u *UPS) getFeature(id uint8) ([]byte, error) {
	n := u.desc.ReportLen(Feature, id)
	buf := make([]byte, max(n, 1)+1) // room for an ID byte without IDs
	buf[0] = id
	got, err := u.dev.GetFeature(id, buf)
	if err != nil {
		return nil, fmt.Errorf("get feature report 0x%02x: %w", id, err)
	}
	if got < n {
		return nil, fmt.Errorf("get feature report 0x%02x: got %d bytes, descriptor says %d", id, got, n)
	}
	if u.desc.UsesReportIDs && buf[0] != id {
		return nil, fmt.Errorf("get feature report 0x%02x: device answered report 0x%02x", id, buf[0])
	}
	return buf[:n], nil
}

// drainInput keeps the latest input report of each ID that arrives
// within wait (the device's interrupt reports).
func (u *UPS) drainInput(ctx context.Context, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		buf := make([]byte, u.inputSize)
		n, err := u.dev.ReadInput(ctx, buf)
		if err != nil || n == 0 {
			return
		}
		var id uint8
		if u.desc.UsesReportIDs {
			id = buf[0]
		}
		u.inputs[id] = buf[:n]
	}
}

// hasInputOnly reports whether a mapped path is only in input reports.
func (u *UPS) hasInputOnly() bool {
	for _, m := range varMap {
		if f := u.field(m.paths); f != nil && f.Kind == Input {
			return true
		}
	}
	for _, m := range statusMap {
		if f := u.field(m.paths); f != nil && f.Kind == Input {
			return true
		}
	}
	return false
}

// Vars reads the UPS and returns NUT variables by name, ups.status
// included. A variable whose report cannot be read is left out; Vars
// fails when the status cannot be read at all.
func (u *UPS) Vars(ctx context.Context) (map[string]string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if u.inputSize > 0 {
		u.drainInput(ctx, 50*time.Millisecond)
	}
	r := &reader{u: u, features: map[uint8][]byte{}, errs: map[uint8]error{}}
	vars := map[string]string{
		"driver.name":        DriverName,
		"device.type":        "ups",
		"ups.delay.shutdown": strconv.Itoa(u.delayShutdown),
		"ups.delay.start":    strconv.Itoa(u.delayStart),
	}
	if u.info.VendorID != 0 {
		vars["ups.vendorid"] = fmt.Sprintf("%04x", u.info.VendorID)
		vars["ups.productid"] = fmt.Sprintf("%04x", u.info.ProductID)
	}
	for _, kv := range [][2]string{{"mfr", u.info.Manufacturer}, {"model", u.info.Product}, {"serial", u.info.Serial}} {
		if v := strings.TrimSpace(kv[1]); v != "" {
			vars["device."+kv[0]] = v
			vars["ups."+kv[0]] = v
		}
	}
	for _, m := range varMap {
		f := u.field(m.paths)
		if f == nil {
			continue
		}
		v, err := r.value(f)
		if err != nil {
			continue
		}
		vars[m.name] = formatNUT(m.format, v)
	}
	st, seen, err := u.status(r)
	if err != nil {
		return nil, err
	}
	vars["ups.status"] = statusString(st, seen, vars["battery.charge"])
	return vars, nil
}

// status collects the internal status bits; seen tells which bits the
// device has at all.
func (u *UPS) status(r *reader) (st, seen int, err error) {
	var firstErr error
	for _, m := range statusMap {
		f := u.field(m.paths)
		if f == nil {
			continue
		}
		rep, e := r.report(f)
		if e != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", f.PathString(), e)
			}
			continue
		}
		l, e := u.desc.Logical(f, rep)
		if e != nil {
			if firstErr == nil {
				firstErr = e
			}
			continue
		}
		seen |= m.bit
		if l != 0 {
			st |= m.bit
		}
	}
	if seen == 0 {
		if firstErr != nil {
			return 0, 0, fmt.Errorf("hidups: reading status: %w", firstErr)
		}
		return 0, 0, errors.New("hidups: the device reports no status flags (no PresentStatus usages)")
	}
	if seen&stOnline == 0 && firstErr != nil {
		return 0, 0, fmt.Errorf("hidups: reading status: %w", firstErr)
	}
	return st, seen, nil
}

// statusString turns status bits into NUT's ups.status, in NUT's order.
func statusString(st, seen int, charge string) string {
	var s []string
	switch {
	case st&stOnline != 0:
		s = append(s, "OL")
	case seen&stOnline != 0 || st&stDischarging != 0:
		s = append(s, "OB")
	}
	if st&stDischarging != 0 {
		s = append(s, "DISCHRG")
	}
	if st&stCharging != 0 && st&stFullyCharged == 0 {
		// As NUT: without a fully-charged flag, CHRG needs a known
		// battery.charge below 100.
		if c, err := strconv.Atoi(charge); err == nil && c > 0 && c < 100 {
			s = append(s, "CHRG")
		}
	}
	if st&(stLowBatt|stTimeLimitExpired|stShutdownImminent) != 0 {
		s = append(s, "LB")
	}
	if st&stOverload != 0 {
		s = append(s, "OVER")
	}
	if st&stReplaceBatt != 0 {
		s = append(s, "RB")
	}
	if st&stTrim != 0 {
		s = append(s, "TRIM")
	}
	if st&stBoost != 0 {
		s = append(s, "BOOST")
	}
	if seen&stGood != 0 && st&stGood == 0 {
		s = append(s, "OFF")
	}
	return strings.Join(s, " ")
}

func formatNUT(format string, v float64) string {
	s := fmt.Sprintf(format, v)
	if s == "-0" || s == "-0.0" {
		s = s[1:]
	}
	return s
}

// SetVar sets a writable variable: ups.delay.shutdown or ups.delay.start
// (whole seconds, kept by the driver and used by the shutdown commands,
// as NUT does).
func (u *UPS) SetVar(ctx context.Context, name, value string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	var dst *int
	var path string
	switch name {
	case "ups.delay.shutdown":
		dst, path = &u.delayShutdown, "UPS.PowerSummary.DelayBeforeShutdown"
	case "ups.delay.start":
		dst, path = &u.delayStart, "UPS.PowerSummary.DelayBeforeStartup"
	default:
		for _, m := range varMap {
			if m.name == name {
				return fmt.Errorf("hidups: set %s: %w", name, ErrReadOnly)
			}
		}
		return fmt.Errorf("hidups: set %s: %w", name, ErrVarNotSupported)
	}
	v, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || v < 0 {
		return fmt.Errorf("hidups: set %s=%q: want whole seconds >= 0: %w", name, value, ErrInvalidValue)
	}
	if f := u.desc.Find(Feature, path); f != nil && int64(v) > f.LogMax && f.LogMax > 0 {
		return fmt.Errorf("hidups: set %s=%d: the UPS takes at most %d: %w", name, v, f.LogMax, ErrInvalidValue)
	}
	*dst = v
	return nil
}

// Commands lists the instant commands InstCmd knows for this device.
func (u *UPS) Commands() []string {
	var cmds []string
	start := u.desc.Find(Feature, "UPS.PowerSummary.DelayBeforeStartup") != nil
	shut := u.desc.Find(Feature, "UPS.PowerSummary.DelayBeforeShutdown") != nil
	if shut {
		cmds = append(cmds, "load.off", "load.off.delay", "shutdown.stop")
	}
	if start {
		cmds = append(cmds, "load.on.delay")
	}
	if start && shut {
		cmds = append(cmds, "shutdown.return")
	}
	return cmds
}

// InstCmd runs an instant command (see the package documentation).
func (u *UPS) InstCmd(ctx context.Context, name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	const (
		startup  = "UPS.PowerSummary.DelayBeforeStartup"
		shutdown = "UPS.PowerSummary.DelayBeforeShutdown"
	)
	switch name {
	case "shutdown.return":
		if u.delayStart <= u.delayShutdown {
			return fmt.Errorf("hidups: shutdown.return: ups.delay.start (%d) must exceed ups.delay.shutdown (%d): %w", u.delayStart, u.delayShutdown, ErrInvalidValue)
		}
		if u.desc.Find(Feature, startup) == nil || u.desc.Find(Feature, shutdown) == nil {
			return fmt.Errorf("hidups: shutdown.return: the UPS has no %s and %s features: %w", startup, shutdown, ErrCmdNotSupported)
		}
		if err := u.write(startup, float64(u.delayStart)); err != nil {
			return fmt.Errorf("hidups: shutdown.return: %w", err)
		}
		if err := u.write(shutdown, float64(u.delayShutdown)); err != nil {
			return fmt.Errorf("hidups: shutdown.return: %w", err)
		}
		return nil
	case "shutdown.stop":
		return u.cmdWrite(name, shutdown, -1)
	case "load.off":
		return u.cmdWrite(name, shutdown, 0)
	case "load.off.delay":
		return u.cmdWrite(name, shutdown, float64(u.delayShutdown))
	case "load.on.delay":
		return u.cmdWrite(name, startup, float64(u.delayStart))
	}
	return fmt.Errorf("hidups: %s: %w", name, ErrCmdNotSupported)
}

func (u *UPS) cmdWrite(cmd, path string, v float64) error {
	if u.desc.Find(Feature, path) == nil {
		return fmt.Errorf("hidups: %s: the UPS has no %s feature: %w", cmd, path, ErrCmdNotSupported)
	}
	if err := u.write(path, v); err != nil {
		return fmt.Errorf("hidups: %s: %w", cmd, err)
	}
	return nil
}

// write sets the feature field at path to v (in NUT's units): it reads
// the report, changes the field's bits and writes the report back.
func (u *UPS) write(path string, v float64) error {
	f := u.desc.Find(Feature, path)
	if f == nil {
		return fmt.Errorf("no feature %s", path)
	}
	rep, err := u.getFeature(f.ReportID)
	if err != nil {
		return err
	}
	if err := u.desc.Encode(f, rep, f.ToLogical(v)); err != nil {
		return err
	}
	out := rep
	if !u.desc.UsesReportIDs {
		out = append([]byte{0}, rep...)
	}
	if err := u.dev.SetFeature(out); err != nil {
		return fmt.Errorf("set feature report 0x%02x (%s=%g): %w", f.ReportID, path, v, err)
	}
	return nil
}
