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
// per report ID and call) and returns battery.charge, battery.charge.low,
// battery.runtime, battery.runtime.low, battery.voltage, input.voltage,
// output.voltage, ups.load, ups.status, ups.delay.shutdown,
// ups.delay.start, ups.timer.shutdown, ups.timer.start, device.type,
// driver.name ("gate-hidups") and, where the device has them, the
// manufacturer/model/serial string indexes are not resolved (hidraw gives
// no access to USB string descriptors; see Hidraw for the sysfs names).
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
