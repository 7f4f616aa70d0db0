// Package hidups is a pure-Go driver for USB HID Power Device Class UPSes
// (Eaton first, and generic HID PDC units) read over Linux /dev/hidraw*.
//
// It parses the device's HID report descriptor (ParseDescriptor), so that
// every value is found by its usage path (for example
// UPS.PowerSummary.RemainingCapacity) and never by a hard-coded report
// offset: Eaton models differ (PresentStatus flags are 1 bit wide on some,
// 8 bits on others). Values are mapped to NUT variable names the way NUT's
// usbhid-ups with its mge-hid subdriver does it.
//
// The API the UPS daemon uses:
//
//	dev, err := hidups.OpenHidraw(path) // path from hidups.Find("/sys")
//	u, err := hidups.New(dev)           // reads and parses the descriptor
//	vars, err := u.Vars(ctx)            // NUT names → values, incl. ups.status
//	err = u.SetVar(ctx, "ups.delay.shutdown", "20")
//	err = u.InstCmd(ctx, "shutdown.return")
//	err = u.Close()
//
// Vars reads the feature reports that hold mapped fields (one GET_REPORT
// per report ID and call; fields only found in input reports come from
// the latest interrupt report) and returns, where the device has them:
// battery.charge, battery.charge.low, battery.runtime,
// battery.runtime.low, battery.voltage, input.voltage, output.voltage,
// ups.load, ups.timer.shutdown, ups.timer.start and ups.status (OL/OB,
// DISCHRG, CHRG, LB, OVER, RB, TRIM, BOOST, OFF; FSD is the daemon's
// business), plus ups.delay.shutdown, ups.delay.start, device.type and
// driver.name ("gate-hidups"). When the device implements Informer
// (*Hidraw does, from the USB device's sysfs attributes), also
// device.mfr/model/serial and ups.mfr/model/serial.
//
// Errors wrap ErrVarNotSupported, ErrCmdNotSupported, ErrInvalidValue or
// ErrReadOnly where the NUT protocol has a word for them.
//
// As in NUT, ups.delay.shutdown (default 20 s) and ups.delay.start (default
// 30 s) are the driver's settings: SetVar stores them, and the commands
// use them. InstCmd knows:
//
//	shutdown.return  DelayBeforeStartup = ups.delay.start, then
//	                 DelayBeforeShutdown = ups.delay.shutdown (the start
//	                 delay must exceed the shutdown delay)
//	shutdown.stop    DelayBeforeShutdown = -1 (idle)
//	load.off         DelayBeforeShutdown = 0
//	load.off.delay   DelayBeforeShutdown = ups.delay.shutdown
//	load.on.delay    DelayBeforeStartup = ups.delay.start
//
// A write reads the feature report, changes the field's bits and writes
// the report back, so neighbouring fields keep their values.
package hidups
