package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"gate/image"
)

func cmdFlash(e *env, args []string) error {
	fs := newFlags(e, "flash", "[--yes] [--image FILE] DEVICE|FILE")
	img := fs.String("image", "build/gate.img", "the image to write (from gate image)")
	yes := fs.Bool("yes", false, "do not ask before overwriting")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"give exactly one target: the SD card's whole device (e.g. /dev/sdb) or a file"}
	}
	target := fs.Arg(0)
	if _, err := os.Stat(*img); err != nil {
		return fmt.Errorf("image %s: %w (build it with gate image)", *img, err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	mounts, err := image.ParseMountinfo(f)
	f.Close()
	if err != nil {
		return err
	}
	desc, err := image.FlashTarget(target, mounts, "/sys/class/block")
	if err != nil {
		return err
	}
	if !*yes && !strings.HasPrefix(desc, "new file") {
		fmt.Fprintf(e.stderr, "gate flash: %s writes to %s.\nType yes to go on: ", *img, desc)
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return fmt.Errorf("not confirmed: nothing written")
		}
	}
	sum, err := image.Flash(*img, target, e.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote and verified %s on %s (sha256 %s)\n", *img, target, sum)
	fmt.Fprintln(e.stdout, "next: eject the card, put it in the Pi, connect Ethernet and the UPS's USB cable, power on.")
	fmt.Fprintln(e.stdout, "the gate is up when http://<its address>/ answers (user gokrazy, password in secrets/gokrazy-password); later: gate update")
	return nil
}
