package upsd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gate/internal/hidups"
	"gate/internal/nut"
)

// USBSource reads the UPS on the gate's USB with the pure-Go HID driver
// (internal/hidups). The device is found and opened at the first use and
// again after an error (the UPS unplugged, or reset).
type USBSource struct {
	// Open finds and opens the UPS; nil: the first HID power device under
	// /sys (an Eaton first).
	Open func() (hidups.Device, error)

	mu sync.Mutex
	u  *hidups.UPS
}

// commandDescs are NUT's descriptions of the commands the driver knows.
var commandDescs = map[string]string{
	"shutdown.return": "Turn off the load and return when power is back",
	"shutdown.stop":   "Stop a shutdown in progress",
	"load.off":        "Turn off the load immediately",
	"load.off.delay":  "Turn off the load with a delay (seconds)",
	"load.on.delay":   "Turn on the load with a delay (seconds)",
}

func openSysfs() (hidups.Device, error) {
	path, err := hidups.Find("/sys")
	if err != nil {
		return nil, err
	}
	return hidups.OpenHidraw(path)
}

// ups returns the open driver; s.mu is held.
func (s *USBSource) ups() (*hidups.UPS, error) {
	if s.u != nil {
		return s.u, nil
	}
	open := s.Open
	if open == nil {
		open = openSysfs
	}
	dev, err := open()
	if err != nil {
		return nil, fmt.Errorf("USB UPS: %w", err)
	}
	u, err := hidups.New(dev)
	if err != nil {
		if c, ok := dev.(interface{ Close() error }); ok {
			c.Close()
		}
		return nil, fmt.Errorf("USB UPS: %w", err)
	}
	s.u = u
	return u, nil
}

// drop closes the driver after an error; s.mu is held.
func (s *USBSource) drop() {
	if s.u != nil {
		s.u.Close()
		s.u = nil
	}
}

// Read implements Source.
func (s *USBSource) Read(ctx context.Context) (Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.ups()
	if err != nil {
		return Reading{}, err
	}
	vars, err := u.Vars(ctx)
	if err != nil {
		s.drop()
		return Reading{}, fmt.Errorf("USB UPS: %w", err)
	}
	r := Reading{Vars: vars, Writable: map[string]bool{}, Commands: map[string]string{}, Types: map[string]string{}}
	for v := range vars {
		// As NUT's upsd types usbhid-ups's variables: the delays are
		// flagged RW strings of 10, the rest carry no flag (NUMBER).
		r.Types[v] = "NUMBER"
	}
	for _, v := range []string{"ups.delay.shutdown", "ups.delay.start"} {
		if _, ok := vars[v]; ok {
			r.Writable[v] = true
			r.Types[v] = "RW STRING:10"
		}
	}
	for _, c := range u.Commands() {
		d := commandDescs[c]
		if d == "" {
			d = "Description unavailable"
		}
		r.Commands[c] = d
	}
	return r, nil
}

// SetVar implements Source.
func (s *USBSource) SetVar(ctx context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.ups()
	if err != nil {
		return err
	}
	if err := u.SetVar(ctx, name, value); err != nil {
		return nutError("SET", fmt.Errorf("USB UPS: setting %s to %q: %w", name, value, err))
	}
	return nil
}

// nutError gives a driver's refusal of cmd NUT's word for it.
func nutError(cmd string, err error) error {
	for _, m := range []struct {
		err  error
		word string
	}{
		{hidups.ErrReadOnly, "READONLY"},
		{hidups.ErrInvalidValue, "INVALID-VALUE"},
		{hidups.ErrVarNotSupported, "VAR-NOT-SUPPORTED"},
		{hidups.ErrCmdNotSupported, "CMD-NOT-SUPPORTED"},
	} {
		if errors.Is(err, m.err) {
			return fmt.Errorf("%w (%v)", &nut.Error{Word: m.word, Cmd: cmd}, err)
		}
	}
	return err
}

// InstCmd implements Source. The driver's commands take no parameter
// (the delays are ups.delay.shutdown and ups.delay.start): one given is
// refused with INVALID-ARGUMENT.
func (s *USBSource) InstCmd(ctx context.Context, name, param string) error {
	if param != "" {
		return fmt.Errorf("%w (USB UPS: %s takes no parameter, got %q)", &nut.Error{Word: "INVALID-ARGUMENT", Cmd: "INSTCMD"}, name, param)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.ups()
	if err != nil {
		return err
	}
	if err := u.InstCmd(ctx, name); err != nil {
		return nutError("INSTCMD", fmt.Errorf("USB UPS: %s: %w", name, err))
	}
	return nil
}

// Close implements Source.
func (s *USBSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop()
	return nil
}
