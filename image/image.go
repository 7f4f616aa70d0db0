// Package image builds the gate's SD card image from a site file, without
// gok: it compiles the gokrazy init (with every program's flags compiled
// in) and the programs, then writes the disk with go-diskfs:
//
//	MBR, disk signature derived from the host name (root=PARTUUID=<sig>-02)
//	1  boot   FAT16  100 MiB (gokrazy's updater reads FAT16B only)  firmware, kernel, dtbs, overlays, config.txt, cmdline.txt
//	2  root A squashfs 500 MiB  /gokrazy, /user, /etc/gate/site.yaml, /lib/modules, ...
//	3  root B (empty; gokrazy's updates write the inactive root)
//	4  perm   ext4   the rest: the site's secrets (0600) and state directories
//
// The site file goes into the read-only root; secrets go only to /perm.
// The image is reproducible: the same inputs give the same bytes (fixed
// timestamps, sorted entries, a build timestamp derived from the inputs,
// /perm's UUIDs derived from the host name and its times rewritten, see
// ext4.go).
package image

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"gate/config"
	"gate/internal/gomodule"
)

// Layout, in 512-byte sectors.
const (
	sector       = 512
	bootStart    = 8192 // 4 MiB, as gok
	bootSectors  = 100 << 20 / sector
	rootSectors  = 500 << 20 / sector
	minPermBytes = 64 << 20
	// DefaultSize is the image size: the SD card may be larger, /perm then
	// simply does not use the rest.
	DefaultSize = 2 << 30
)

// Options say what to build.
type Options struct {
	Config   *config.Config
	SiteYAML []byte // the site file as written, put into the root
	Arch     string // arm64 or amd64
	Output   string
	Size     int64 // default DefaultSize
	// SourceDir is any directory inside the gate source tree (default ".").
	SourceDir string
	// BuildTimestamp overrides the build timestamp gokrazy reports; by
	// default it is derived from the inputs.
	BuildTimestamp string
	// ExtraRootFiles adds files to the root file system (path in the root
	// → content), e.g. for tests; see also bootAssets.
	ExtraRootFiles map[string][]byte
}

// Partition describes one partition of the result.
type Partition struct {
	Number int
	Name   string
	FS     string
	Start  int64 // bytes
	Size   int64 // bytes
}

// Result says what was built.
type Result struct {
	Output         string
	Arch           string
	SHA256         string // the whole image
	Partitions     []Partition
	Services       []string          // root paths of the supervised programs
	Binaries       map[string]int64  // root path → size
	Links          map[string]string // root path → the binary it links to
	RootSize       int64             // the squashfs, bytes
	Kernel         string            // module@version
	Firmware       string            // module@version (arm64)
	BuildTimestamp string
	DiskSignature  uint32
	PARTUUIDRoot   string // of root A
}

func (o *Options) defaults() error {
	if o.Config == nil {
		return fmt.Errorf("image: no site config")
	}
	switch o.Arch {
	case "":
		// The model chooses: a PC is amd64, every Pi arm64.
		o.Arch = "arm64"
		if o.Config.Gate.Model == "pc" {
			o.Arch = "amd64"
		}
	case "arm64":
		if o.Config.Gate.Model == "pc" {
			return fmt.Errorf("image: gate.model is pc, an amd64 machine: build it with --arch amd64 (or without --arch)")
		}
	case "amd64":
		// The QEMU twin of a Pi site, or a pc.
	default:
		return fmt.Errorf("image: unknown architecture %q (arm64 for the Pi, amd64 for the QEMU twin)", o.Arch)
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	min := int64(bootStart+bootSectors+2*rootSectors)*sector + minPermBytes
	if o.Size < min {
		return fmt.Errorf("image: size %d too small (at least %d MiB)", o.Size, min>>20)
	}
	if o.SourceDir == "" {
		o.SourceDir = "."
	}
	if o.Output == "" {
		return fmt.Errorf("image: no output file")
	}
	return nil
}

// DiskSignature derives the MBR disk signature from the host name, so that
// root=PARTUUID stays the same from one build to the next.
func DiskSignature(hostname string) uint32 {
	h := sha256.Sum256([]byte("gate disk signature " + hostname))
	sig := binary.LittleEndian.Uint32(h[:4])
	if sig == 0 {
		sig = 1
	}
	return sig
}

// Build builds the image.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	root, err := moduleRoot(ctx, o.SourceDir)
	if err != nil {
		return nil, err
	}
	kernelMod := "github.com/gokrazy/kernel.rpi"
	if o.Arch == "amd64" {
		kernelMod = "github.com/gokrazy/kernel.amd64"
	}
	kernel, err := gomodule.Download(ctx, root, kernelMod)
	if err != nil {
		return nil, err
	}
	var firmware gomodule.Module
	if o.Arch == "arm64" {
		if firmware, err = gomodule.Download(ctx, root, "github.com/gokrazy/firmware"); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp("", "gate-image")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	progs := programs(o.Config, sourceDate(root))
	bins, links, ts, err := compile(ctx, root, o.Arch, o.BuildTimestamp, func(h []byte) string {
		return inputTimestamp(root, o, kernel, firmware, h)
	}, progs, work)
	if err != nil {
		return nil, err
	}

	sig := DiskSignature(o.Config.Gate.Hostname)
	res := &Result{
		Output: o.Output, Arch: o.Arch, Binaries: map[string]int64{}, BuildTimestamp: ts,
		DiskSignature: sig, PARTUUIDRoot: fmt.Sprintf("%08x-02", sig),
		Kernel: kernel.Path + "@" + kernel.Version,
	}
	if firmware.Path != "" {
		res.Firmware = firmware.Path + "@" + firmware.Version
	}
	for _, p := range progs {
		res.Services = append(res.Services, p.Path)
	}
	for path, bin := range bins {
		st, err := os.Stat(bin)
		if err != nil {
			return nil, err
		}
		res.Binaries[path] = st.Size()
	}

	res.Links = links
	// Secrets stay out of the root whatever their form: inline ones move
	// to /perm.
	rootSite, inlined, err := inlineToFiles(o.Config, o.SiteYAML)
	if err != nil {
		return nil, err
	}
	ro := o
	ro.SiteYAML = rootSite
	rootFiles, err := rootTree(ro, bins, links, kernel, root)
	if err != nil {
		return nil, err
	}
	bootFiles, err := bootTree(o, kernel, firmware, res.PARTUUIDRoot)
	if err != nil {
		return nil, err
	}
	permFiles, err := permTree(o.Config, inlined)
	if err != nil {
		return nil, err
	}
	if err := writeDisk(o, sig, bootFiles, rootFiles, permFiles, res); err != nil {
		return nil, err
	}
	if err := hashImage(res); err != nil {
		return nil, err
	}
	return res, nil
}

// FirewallWait bounds how long a daemon waits for the firewall's policy
// before it listens.
const FirewallWait = 10 * time.Second

// programs lists what the init supervises: gokrazy's system programs, the
// clock, then the gate's daemons whose sections the site file has. floor
// is the image's source date, before which the clock never starts.
func programs(c *config.Config, floor time.Time) []program {
	var ps []program
	// tsnet more than doubles cmd/gated: only a site with a tailnet
	// section gets it (internal/mains, build tag tailnet).
	var gatedTags []string
	if c.Tailnet != nil {
		gatedTags = []string{"tailnet"}
	}
	if c.Gate.Address == "dhcp" {
		// lanroute mends the subnet route gokrazy's DHCP client can lose
		// to its own race, which would leave the gate without a LAN until
		// the next power cut (internal/lanroute). A small binary of its
		// own: it runs all the time (cmd/lanroute).
		ps = append(ps, program{Pkg: "github.com/gokrazy/gokrazy/cmd/dhcp", Path: "/gokrazy/dhcp"},
			program{Pkg: "gate/cmd/lanroute", Path: "/gokrazy/lanroute", Args: []string{"-console"}})
	} else {
		addr, _ := c.GateAddr()
		args := []string{"-address", addr.String(), "-gateway", c.LAN.Gateway.String()}
		for _, d := range c.LAN.DNS {
			args = append(args, "-dns", d.String())
		}
		ps = append(ps, program{Pkg: "gate/cmd/gated", Path: "/gokrazy/staticip", Link: "/user/gated", Args: args, Tags: gatedTags})
	}
	ps = append(ps, program{Pkg: "github.com/gokrazy/gokrazy/cmd/randomd", Path: "/gokrazy/randomd"})
	// The gate's own clock daemon replaces gokrazy's ntp: the site's NTP
	// servers, the time saved on /perm as a floor, the synchronised flag
	// the vpn and dyndns wait for (-wait-clock) and metrics.
	wait := "-wait-clock=" + c.Time.Wait.D().String()
	fw := c.Firewall == nil || !c.Firewall.Off
	for _, d := range []struct {
		name string
		on   bool
		args []string
	}{
		{"firewall", fw, nil}, // first: the policy before the services
		{"clock", true, []string{"-floor=" + floor.UTC().Format(time.RFC3339)}},
		{"vpn", c.VPN != nil, []string{wait}},
		{"dyndns", c.DynDNS != nil, []string{wait}},
		{"upsd", c.UPS != nil, nil},
		{"bootstrapd", c.Bootstrap != nil, nil},
		{"bastion", c.Bastion != nil, nil},
		{"statusd", c.Status != nil || c.Alerts != nil, nil},
		{"tailnet", c.Tailnet != nil, nil},
	} {
		if !d.on {
			continue
		}
		args := append([]string{"-console"}, d.args...)
		if fw && d.name != "firewall" {
			// gokrazy starts every program at once: the daemons listen
			// only once the policy is set, or after 10 s without it
			// (internal/daemon).
			args = append(args, "-firewall-wait="+FirewallWait.String())
		}
		ps = append(ps, program{Pkg: "gate/cmd/gated", Path: "/user/" + d.name, Link: "/user/gated", Args: args, Daemon: d.name, Tags: gatedTags})
	}
	return ps
}

// inputTimestamp derives the build timestamp from the inputs: the source's
// commit time (or SOURCE_DATE_EPOCH), then a hash of the programs' binaries,
// the site file, the architecture and the kernel and firmware versions. The
// same inputs give the same string, any change another, which is what
// `gate update` waits for.
func inputTimestamp(root string, o Options, kernel, firmware gomodule.Module, programsHash []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s@%s\n%s@%s\n%x\n", o.Arch, o.SiteYAML, kernel.Path, kernel.Version, firmware.Path, firmware.Version, programsHash)
	return sourceDate(root).UTC().Format(time.RFC3339) + "+" + hex.EncodeToString(h.Sum(nil))[:12]
}

// sourceDate is SOURCE_DATE_EPOCH, else the commit time of the checkout,
// else a fixed date.
func sourceDate(root string) time.Time {
	if t, ok := sourceDateEpoch(); ok {
		return t
	}
	if out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output(); err == nil {
		var sec int64
		if _, err := fmt.Sscan(string(out), &sec); err == nil {
			return time.Unix(sec, 0)
		}
	}
	return fixedTime
}

// sourceRevision is the checkout's commit (12 digits, "-dirty" with
// uncommitted changes to tracked files), or "" outside git.
func sourceRevision(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if err := exec.Command("git", "-C", root, "diff", "--quiet", "HEAD").Run(); err != nil {
		rev += "-dirty"
	}
	return rev
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH.
func sourceDateEpoch() (time.Time, bool) {
	var sec int64
	if _, err := fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), &sec); err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// hashImage computes the image's sha256.
func hashImage(res *Result) error {
	f, err := os.Open(res.Output)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hashing %s: %w", res.Output, err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// Summary writes what is in the image and how to flash it.
func (r *Result) Summary(w io.Writer) {
	fmt.Fprintf(w, "built %s (%s, %d MiB)\n\n", r.Output, r.Arch, r.totalSize()>>20)
	fmt.Fprintf(w, "partitions (MBR, disk signature %08x):\n", r.DiskSignature)
	for _, p := range r.Partitions {
		fmt.Fprintf(w, "  %d  %-7s %-9s at %6d MiB, %5d MiB\n", p.Number, p.Name, p.FS, p.Start>>20, p.Size>>20)
	}
	fmt.Fprintf(w, "  root=PARTUUID=%s\n\n", r.PARTUUIDRoot)
	fmt.Fprintf(w, "root file system: %.1f MiB (squashfs)\n", float64(r.RootSize)/(1<<20))
	var paths []string
	for p := range r.Binaries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(w, "  %-22s %6.1f MiB\n", p, float64(r.Binaries[p])/(1<<20))
	}
	paths = paths[:0]
	for p := range r.Links {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(w, "  %-22s -> %s\n", p, r.Links[p])
	}
	fmt.Fprintf(w, "\nservices supervised by /gokrazy/init: %s\n", strings.Join(r.Services, " "))
	fmt.Fprintf(w, "kernel:   %s\n", r.Kernel)
	if r.Firmware != "" {
		fmt.Fprintf(w, "firmware: %s\n", r.Firmware)
	}
	fmt.Fprintf(w, "build:    %s\n\n", r.BuildTimestamp)
	fmt.Fprintf(w, "sha256 %s  %s  (reproducible: the same inputs give the same bytes)\n\n", r.SHA256, r.Output)
	if r.Arch == "arm64" {
		fmt.Fprintf(w, "to flash: gate flash %s /dev/sdX   (the SD card's whole device; gate refuses mounted disks)\n", r.Output)
		fmt.Fprintf(w, "then put the card in the Pi and power it on; later updates: gate update\n")
	} else {
		fmt.Fprintf(w, "amd64 twin: boot it with QEMU (-accel tcg, -kernel from %s, root=PARTUUID=%s)\n", r.Kernel, r.PARTUUIDRoot)
	}
}

func (r *Result) totalSize() int64 {
	var end int64
	for _, p := range r.Partitions {
		if e := p.Start + p.Size; e > end {
			end = e
		}
	}
	return end
}
