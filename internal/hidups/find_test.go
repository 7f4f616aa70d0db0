package hidups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeHidraw(t *testing.T, root, name, hidID, hidName string, desc []byte) {
	t.Helper()
	dir := filepath.Join(root, "class", "hidraw", name, "device")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ue := "DRIVER=hid-generic\nHID_ID=" + hidID + "\nHID_NAME=" + hidName + "\nHID_UNIQ=\n"
	if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(ue), 0o644); err != nil {
		t.Fatal(err)
	}
	if desc != nil {
		if err := os.WriteFile(filepath.Join(dir, "report_descriptor"), desc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFind(t *testing.T) {
	mouse := []byte{0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x30, 0x75, 0x08, 0x95, 0x01, 0x81, 0x02, 0xc0}
	pdc := layout5SC.build()
	dm := readDump(t, "eaton-3s-700-nut-2887.txt")

	t.Run("eaton by vendor", func(t *testing.T) {
		root := t.TempDir()
		writeHidraw(t, root, "hidraw0", "0003:0000046D:0000C52B", "Logitech USB Receiver", mouse)
		writeHidraw(t, root, "hidraw10", "0003:00000463:0000FFFF", "EATON Eaton 3S", dm.head) // truncated descriptor: the vendor decides
		writeHidraw(t, root, "hidraw2", "0003:0000051D:00000002", "APC Back-UPS", pdc)
		got, err := Find(root)
		if err != nil || got != "/dev/hidraw10" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("any power device", func(t *testing.T) {
		root := t.TempDir()
		writeHidraw(t, root, "hidraw0", "0003:0000046D:0000C52B", "Logitech USB Receiver", mouse)
		writeHidraw(t, root, "hidraw1", "0003:0000051D:00000002", "APC Back-UPS", pdc)
		got, err := Find(root)
		if err != nil || got != "/dev/hidraw1" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		root := t.TempDir()
		writeHidraw(t, root, "hidraw0", "0003:0000046D:0000C52B", "Logitech USB Receiver", mouse)
		writeHidraw(t, root, "hidraw1", "garbage", "Broken", []byte{0xc0})
		_, err := Find(root)
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{"hidraw0", "046d:c52b", "Logitech USB Receiver", "application 00010002", "hidraw1", "bad descriptor"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("no hidraw", func(t *testing.T) {
		if _, err := Find(t.TempDir()); err == nil {
			t.Error("no error")
		}
	})
}
