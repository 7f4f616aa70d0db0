package site

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gate/integration/netlab"

	"github.com/vishvananda/netns"
)

// Golden is the Debian golden test image of `make golden` (build/golden).
type Golden struct {
	Dir  string            // build/golden
	Raw  string            // golden.raw
	Zstd string            // golden.raw.zst
	Sums map[string]string // file name → sha256 (hex)
}

// BuildGolden runs scripts/golden.sh (cached: only checks when the image
// is there; else debootstrap, as root, ~10 min) and returns the image.
func BuildGolden(ctx context.Context) (*Golden, error) {
	root := RepoRoot()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts/golden.sh")).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("make golden: %v: %s", err, Tail(string(out), 10))
	}
	g := &Golden{Dir: filepath.Join(root, "build/golden"), Sums: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(g.Dir, "golden.sha256"))
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			g.Sums[f[1]] = f[0]
		}
	}
	g.Raw, g.Zstd = filepath.Join(g.Dir, "golden.raw"), filepath.Join(g.Dir, "golden.raw.zst")
	if g.Sums["golden.raw"] == "" || g.Sums["golden.raw.zst"] == "" {
		return nil, fmt.Errorf("make golden: %s lacks a sum: %q", filepath.Join(g.Dir, "golden.sha256"), b)
	}
	return g, nil
}

// ServeFiles adds a LAN namespace host (name, at addr on the LAN switch)
// where an HTTP server serves dir on port: a mirror of golden images
// beside the box, as a site would have one. The server lives in the test
// process with its socket in that namespace; it stops with the test.
func (s *Site) ServeFiles(name string, addr netip.Addr, port int, dir string) *netlab.Host {
	s.t.Helper()
	h := s.Lab.Host(name)
	s.Lab.Attach(s.Switch, "br0", h, "eth0", addr.String()+"/24")
	ln, err := listenIn(h, net.JoinHostPort(addr.String(), fmt.Sprint(port)))
	if err != nil {
		s.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	s.t.Cleanup(func() { srv.Close() })
	return h
}

// ListenIn opens a TCP listener inside h's namespace (a receiver in the
// test process that a daemon in the lab can reach).
func ListenIn(h *netlab.Host, addr string) (net.Listener, error) { return listenIn(h, addr) }

// listenIn opens a TCP listener inside h's namespace; the socket stays
// there whichever thread later serves it.
func listenIn(h *netlab.Host, addr string) (net.Listener, error) {
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked (and dies with the goroutine) unless it
		// is back in its own namespace.
		orig, err := netns.Get()
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(h.NS)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- res{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, h.Name, r.err)
	}
	return r.ln, nil
}

// PXEMachine is a QEMU machine on the LAN that boots from the network
// first (BIOS, QEMU's iPXE ROM for virtio-net), with a virtio disk.
type PXEMachine struct {
	s    *Site
	Name string
	MAC  string
	Disk string
	tap  string
}

// NewPXEMachine makes a machine with a blank sparse disk of diskSize
// bytes and a tap on the LAN switch; PowerOn starts it.
func (s *Site) NewPXEMachine(name, mac string, diskSize int64) (*PXEMachine, error) {
	s.t.Helper()
	m := &PXEMachine{s: s, Name: name, MAC: mac, Disk: filepath.Join(s.Dir, name+".disk"), tap: s.Lab.Name("px")}
	f, err := os.Create(m.Disk)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(diskSize); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	s.Switch.Tap(m.tap, "br0")
	return m, nil
}

// PowerOn starts the machine; QEMU exits when it reboots or powers off.
// label names this power-on in the test log.
func (m *PXEMachine) PowerOn(label string) *netlab.Proc {
	return m.s.Switch.Start("qemu-"+m.Name+"-"+label, nil, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024",
		"-nographic", "-no-reboot", "-boot", "order=n",
		"-drive", "file="+m.Disk+",format=raw,if=virtio",
		"-netdev", "tap,id=n0,ifname="+m.tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+m.MAC, "-device", "virtio-rng-pci")
}
