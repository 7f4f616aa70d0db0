package upsd

import "golang.org/x/sys/unix"

func powerOffSyscall() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
