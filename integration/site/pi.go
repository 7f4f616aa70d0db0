package site

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gate/integration/netlab"
)

// The real Raspberry Pi image, emulated: QEMU's raspi3b machine boots the
// arm64 image `gate image --arch arm64` writes, as the Pi would, with
// these differences (all on QEMU's side, never in the image):
//
//   - QEMU runs no Pi firmware: at each power-on the harness reads the
//     kernel, the Pi 3 B's device tree and the command line from the SD
//     card's boot partition, as the firmware would, and gives them to QEMU
//     (-kernel, -dtb, -append); config.txt is only checked by the image
//     tests.
//   - The device tree is edited as the firmware's dtoverlay=disable-bt
//     does (the PL011 becomes serial0, Bluetooth and the mini UART are
//     off), so the console is ttyAMA0; the firmware's console=serial0 is
//     replaced by console=ttyAMA0,115200.
//   - initcall_blacklist=bcm2835_wdt_driver_init: QEMU 7.2 resets the
//     machine as soon as gokrazy starts the watchdog. The same driver
//     powers a Pi off and restarts it, so on a power-off the console shows
//     "reboot: Power off not available: System halted instead" and QEMU
//     keeps running: GateVM.Halted waits for that line and the test then
//     cuts the power (GateVM.PowerCut); on a restart (an update) the test
//     powers it on again when the kernel says "reboot: Restarting system".
//   - The SD card is a qcow2 overlay over the image, sized to a power of
//     two as QEMU's SD model requires: what the gate writes (/perm, an
//     update's root) stays on it across power cycles; the image is never
//     written. It is opened with cache=writethrough: an SD card has no
//     cache-flush command, so QEMU's SD model never asks for one, and a
//     power cut (QEMU killed) would otherwise lose the qcow2 overlay's
//     cached metadata of writes the card had completed: e2fsck of /perm
//     then finds damage no real card shows.
//   - The NIC is a USB one (usb-net: CDC Ethernet) on a tap of the LAN
//     switch. Its MAC must be globally administered (the Pi's own OUI,
//     b8:27:eb) for Linux to name it eth0 as on a Pi; with 52:54:… it is
//     usb0 and the gate has no network.
//   - As on a Pi there is no RTC: the kernel's clock starts at 1970 at
//     each power-on.

// PiBoot is what QEMU needs to boot an arm64 gate image as a Pi 3 B.
type PiBoot struct {
	Image string // the image as built (never written)
	SD    string // the SD card: a qcow2 overlay over Image
	dir   string
	parts [4][2]int64 // each partition's first sector and sector count
	// From the SD card's boot partition at the last power-on:
	Kernel  string // vmlinuz
	DTB     string // bcm2710-rpi-3-b.dtb, edited
	Cmdline string // cmdline.txt, edited
}

// PreparePi makes the SD card (an overlay over img) in dir.
func PreparePi(img, dir string) (*PiBoot, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	pb := &PiBoot{Image: img, SD: filepath.Join(dir, "sd.qcow2"), dir: dir,
		Kernel: filepath.Join(dir, "vmlinuz"), DTB: filepath.Join(dir, "pi3b.dtb")}
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	var mbr [512]byte
	_, err = f.ReadAt(mbr[:], 0)
	st, serr := f.Stat()
	f.Close()
	if err != nil || serr != nil {
		return nil, fmt.Errorf("%s: reading the partition table: %v %v", img, err, serr)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, fmt.Errorf("%s: no MBR partition table", img)
	}
	for i := range pb.parts {
		e := mbr[446+16*i:]
		pb.parts[i] = [2]int64{int64(binary.LittleEndian.Uint32(e[8:])), int64(binary.LittleEndian.Uint32(e[12:]))}
	}
	size := int64(1)
	for size < st.Size() {
		size <<= 1
	}
	abs, err := filepath.Abs(img)
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs, pb.SD, fmt.Sprint(size)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-img create (the SD card): %v %s", err, out)
	}
	return pb, pb.readBoot()
}

// readBoot does what the Pi's firmware does at power-on: it reads the
// kernel, the device tree and the command line from the SD card's boot
// partition (an update may have rewritten cmdline.txt's root=). mtools
// reads the FAT: this machine's kernel may have no FAT driver.
func (pb *PiBoot) readBoot() error {
	fat := filepath.Join(pb.dir, "boot.fat")
	defer os.Remove(fat)
	if err := pb.partition(1, fat); err != nil {
		return err
	}
	cmdlineFile := filepath.Join(pb.dir, "cmdline.txt")
	for from, to := range map[string]string{"vmlinuz": pb.Kernel, "bcm2710-rpi-3-b.dtb": pb.DTB, "cmdline.txt": cmdlineFile} {
		if out, err := exec.Command("mcopy", "-o", "-i", fat, "::"+from, to).CombinedOutput(); err != nil {
			return fmt.Errorf("the SD card's boot partition: mcopy %s: %v %s", from, err, out)
		}
	}
	b, err := os.ReadFile(cmdlineFile)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), "console=serial0,115200") {
		return fmt.Errorf("cmdline.txt has no console=serial0,115200 (the Pi's serial console): %q", strings.TrimSpace(string(b)))
	}
	pb.Cmdline = EmulatedCmdline(string(b))
	// dtoverlay=disable-bt, done on the copy.
	for _, set := range [][]string{
		{"/aliases", "serial0", "/soc/serial@7e201000"},
		{"/aliases", "serial1", "/soc/serial@7e215040"},
		{"/soc/serial@7e201000/bluetooth", "status", "disabled"},
		{"/soc/serial@7e215040", "status", "disabled"},
	} {
		if out, err := exec.Command("fdtput", "-t", "s", pb.DTB, set[0], set[1], set[2]).CombinedOutput(); err != nil {
			return fmt.Errorf("fdtput %s %s: %v %s", set[0], set[1], err, out)
		}
	}
	return nil
}

// partition copies partition n (1-4) of the SD card to file.
func (pb *PiBoot) partition(n int, file string) error {
	p := pb.parts[n-1]
	// qemu-img dd (7.2) counts count from the start of the input, skip
	// included.
	if out, err := exec.Command("qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512",
		fmt.Sprintf("skip=%d", p[0]), fmt.Sprintf("count=%d", p[0]+p[1]), "if="+pb.SD, "of="+file).CombinedOutput(); err != nil {
		return fmt.Errorf("reading partition %d of the SD card: %v %s", n, err, out)
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	if st.Size() != p[1]*512 {
		return fmt.Errorf("reading partition %d of the SD card: %d bytes, want %d", n, st.Size(), p[1]*512)
	}
	return nil
}

// CheckPerm checks a copy of the SD card's /perm (partition 4) while the
// Pi is off, with e2fsck -fy (the copy is repaired, never the card): it
// returns e2fsck's output and an error naming what was wrong: a journal
// left to replay (/perm was not unmounted), and what e2fsck had to fix
// after the replay.
func (pb *PiBoot) CheckPerm() (string, error) {
	f := filepath.Join(pb.dir, "perm.ext4")
	defer os.Remove(f)
	if err := pb.partition(4, f); err != nil {
		return "", err
	}
	out, err := exec.Command("e2fsck", "-fy", f).CombinedOutput()
	var problems []string
	if strings.Contains(string(out), "recovering journal") {
		problems = append(problems, "a journal to replay (/perm was not unmounted)")
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), "? yes") {
			problems = append(problems, "fixed: "+strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l), "? yes")))
		}
	}
	if len(problems) == 0 && err != nil {
		problems = append(problems, "e2fsck: "+err.Error())
	}
	if len(problems) > 0 {
		return string(out), fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return string(out), nil
}

// EmulatedCmdline turns the image's cmdline.txt into QEMU's: the serial
// console on ttyAMA0 (the firmware, which QEMU does not run, would have
// resolved serial0) and the watchdog driver left out.
func EmulatedCmdline(cmdline string) string {
	var f []string
	for _, w := range strings.Fields(cmdline) {
		if !strings.HasPrefix(w, "console=") {
			f = append(f, w)
		}
	}
	return strings.Join(append(f, "console=ttyAMA0,115200", "initcall_blacklist=bcm2835_wdt_driver_init"), " ")
}

// PiRequirements are the programs BootPi needs.
var PiRequirements = []string{"qemu-system-aarch64", "qemu-img", "fdtput", "mcopy"}

// BootPi powers the emulated Pi on with its USB NIC (MAC mac) on a tap of
// the LAN switch (made once, kept across power cycles).
func (s *Site) BootPi(pb *PiBoot, mac string) *GateVM {
	s.t.Helper()
	s.Switch.Tap(s.Lab.Name("gt"), "br0")
	g := &GateVM{Image: pb.Image, Arch: "arm64", Pi: pb}
	g.start = func(name string) *GateVM {
		if err := pb.readBoot(); err != nil {
			s.t.Fatalf("powering the Pi on: %v", err)
		}
		run := func() *netlab.Proc {
			return s.Switch.Start(name, nil, "qemu-system-aarch64",
				"-M", "raspi3b", "-nographic", "-no-reboot",
				"-kernel", pb.Kernel, "-dtb", pb.DTB, "-append", pb.Cmdline,
				"-drive", "file="+pb.SD+",if=sd,format=qcow2,cache=writethrough",
				"-netdev", "tap,id=n0,ifname="+s.Lab.Name("gt")+",script=no,downscript=no",
				"-device", "usb-net,netdev=n0,mac="+mac)
		}
		p := run()
		// Seen on a loaded machine, up to twice in a row: QEMU ran for
		// minutes without the kernel's first line. That is QEMU's, not
		// the gate's (nothing of the gate's, not even its root file
		// system, has run by then): power-cycle, at most twice more, and
		// say so.
		for try := 1; try < 3; try++ {
			if err := p.WaitFor("Booting Linux", 2*time.Minute); err == nil {
				break
			}
			fmt.Printf("JOURNEY    NOTE: the emulated Pi (%s) printed nothing in 2 min after power-on; powered on again (%d)\n", name, try)
			p.Kill()
			p = run()
		}
		return &GateVM{Image: pb.Image, Arch: "arm64", Pi: pb, start: g.start, Proc: p}
	}
	return g.start("qemu-pi")
}
