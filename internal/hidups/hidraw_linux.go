package hidups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Hidraw is a Linux /dev/hidraw* device.
type Hidraw struct {
	f    *os.File
	path string
	info DeviceInfo
}

// hidIOC builds a read/write 'H' ioctl number with a length, as the
// kernel's HIDIOCGFEATURE(len)/HIDIOCSFEATURE(len) do (generic _IOC
// layout, as on arm, arm64 and amd64).
func hidIOC(nr, size uintptr) uintptr {
	const (
		iocWrite = 1
		iocRead  = 2
	)
	return (iocRead|iocWrite)<<30 | size<<16 | 'H'<<8 | nr
}

// OpenHidraw opens a hidraw node (from Find) for reading and writing.
func OpenHidraw(path string) (*Hidraw, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("hidups: %w", err)
	}
	h := &Hidraw{f: f, path: path}
	if err := h.control(func(fd uintptr) error {
		info, err := unix.IoctlHIDGetRawInfo(int(fd))
		if err == nil {
			h.info.VendorID, h.info.ProductID = uint16(info.Vendor), uint16(info.Product)
		}
		return err
	}); err != nil {
		f.Close()
		return nil, fmt.Errorf("hidups: %s: HIDIOCGRAWINFO: %w", path, err)
	}
	// The USB device's strings, from sysfs: hidrawN/device is the HID
	// device, under the USB interface, under the USB device.
	if dev, err := filepath.EvalSymlinks(filepath.Join("/sys/class/hidraw", filepath.Base(path), "device")); err == nil {
		usb := filepath.Dir(filepath.Dir(dev))
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(usb, name))
			return strings.TrimSpace(string(b))
		}
		h.info.Manufacturer, h.info.Product, h.info.Serial = read("manufacturer"), read("product"), read("serial")
	}
	return h, nil
}

func (h *Hidraw) control(fn func(fd uintptr) error) error {
	rc, err := h.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}

// Info returns the device's USB IDs and strings.
func (h *Hidraw) Info() DeviceInfo { return h.info }

// ReportDescriptor reads the descriptor (HIDIOCGRDESCSIZE, HIDIOCGRDESC).
func (h *Hidraw) ReportDescriptor() ([]byte, error) {
	var out []byte
	err := h.control(func(fd uintptr) error {
		size, err := unix.IoctlGetInt(int(fd), unix.HIDIOCGRDESCSIZE)
		if err != nil {
			return fmt.Errorf("HIDIOCGRDESCSIZE: %w", err)
		}
		var d unix.HIDRawReportDescriptor
		if size < 0 || size > len(d.Value) {
			return fmt.Errorf("HIDIOCGRDESCSIZE: size %d out of range", size)
		}
		d.Size = uint32(size)
		if err := unix.IoctlHIDGetDesc(int(fd), &d); err != nil {
			return fmt.Errorf("HIDIOCGRDESC: %w", err)
		}
		out = append([]byte(nil), d.Value[:size]...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.path, err)
	}
	return out, nil
}

func (h *Hidraw) featureIoctl(nr uintptr, buf []byte) (int, error) {
	if len(buf) == 0 || len(buf) > 1<<14 {
		return 0, fmt.Errorf("feature buffer of %d bytes", len(buf))
	}
	var n int
	err := h.control(func(fd uintptr) error {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, hidIOC(nr, uintptr(len(buf))), uintptr(unsafe.Pointer(&buf[0])))
		if errno != 0 {
			return errno
		}
		n = int(r)
		return nil
	})
	return n, err
}

// GetFeature reads feature report id (HIDIOCGFEATURE).
func (h *Hidraw) GetFeature(id uint8, buf []byte) (int, error) {
	if len(buf) > 0 {
		buf[0] = id
	}
	n, err := h.featureIoctl(0x07, buf)
	if err != nil {
		return 0, fmt.Errorf("%s: HIDIOCGFEATURE report 0x%02x: %w", h.path, id, err)
	}
	return n, nil
}

// SetFeature writes a feature report, buf[0] being its ID (HIDIOCSFEATURE).
func (h *Hidraw) SetFeature(buf []byte) error {
	if _, err := h.featureIoctl(0x06, buf); err != nil {
		return fmt.Errorf("%s: HIDIOCSFEATURE report 0x%02x: %w", h.path, buf[0], err)
	}
	return nil
}

// ReadInput reads one input report, waiting until ctx is done.
func (h *Hidraw) ReadInput(ctx context.Context, buf []byte) (int, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	if err := h.f.SetReadDeadline(dl); err != nil {
		return 0, fmt.Errorf("%s: %w", h.path, err)
	}
	stop := context.AfterFunc(ctx, func() { h.f.SetReadDeadline(time.Now()) })
	defer stop()
	n, err := h.f.Read(buf)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("%s: read: %w", h.path, err)
	}
	return n, nil
}

// Close closes the device.
func (h *Hidraw) Close() error { return h.f.Close() }
