// Command testinit is the /init of the test initramfs: it prints a marker
// on the console and powers the machine off.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func main() {
	os.MkdirAll("/dev", 0o755)
	syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	for _, dev := range []string{"/dev/console", "/dev/ttyS0"} {
		if f, err := os.OpenFile(dev, os.O_WRONLY, 0); err == nil {
			fmt.Fprintln(f, "GATE-TEST-INIT-MARKER")
			f.Close()
		}
	}
	fmt.Println("GATE-TEST-INIT-MARKER")
	time.Sleep(500 * time.Millisecond)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
