// Package reimage tests the re-imaging chain (issue 6) under QEMU (TCG):
// the imager's initramfs on gokrazy's kernel.amd64 writing the golden
// image to a virtio disk, the written Debian booting and applying its
// cloud-init NoCloud data, and the failures that must leave a host
// unbootable-but-flagged.
package reimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/internal/initramfs"

	"github.com/vishvananda/netns"
)

const (
	bridgeAddr = "10.77.0.1"
	vmAddr     = "10.77.0.10"
	vmMAC      = "52:54:00:6a:00:10"
	serverPort = "8080"
)

// moduleRoot is the gate checkout (tests run in integration/reimage).
func moduleRoot(t testing.TB) string {
	d, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// golden builds (or takes from the cache) build/golden: make golden.
func golden(t testing.TB) (raw, zst string, sums map[string]string) {
	t.Helper()
	root := moduleRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts/golden.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("make golden: %v: %s", err, out)
	}
	dir := filepath.Join(root, "build/golden")
	b, err := os.ReadFile(filepath.Join(dir, "golden.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	sums = map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		sums[f[1]] = f[0]
	}
	return filepath.Join(dir, "golden.raw"), filepath.Join(dir, "golden.raw.zst"), sums
}

// imagerBoot returns the kernel and the freshly built initramfs.
func imagerBoot(t testing.TB) (kernel, initrd string) {
	t.Helper()
	ctx := context.Background()
	root := moduleRoot(t)
	k, err := initramfs.KernelPath(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := initramfs.Build(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	initrd = filepath.Join(t.TempDir(), "initramfs.gz")
	if err := os.WriteFile(initrd, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return k, initrd
}

// lan is a namespace with a bridge, dnsmasq as the DHCP server (static
// lease for the VM's MAC) and a tap for the VM.
type lan struct {
	lab *netlab.Lab
	sw  *netlab.Host
	tap string
}

func newLAN(t *testing.T, dnsmasqArgs ...string) *lan {
	l := &lan{lab: netlab.New(t)}
	l.sw = l.lab.Host("sw")
	l.sw.Bridge("br0", bridgeAddr+"/24")
	l.tap = "tap0"
	l.sw.Tap(l.tap, "br0")
	dir := t.TempDir()
	args := []string{"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=br0", "--bind-interfaces", "--no-hosts", "--no-resolv",
		"--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
		"--dhcp-host=" + vmMAC + "," + vmAddr, "--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--dhcp-option=option:router," + bridgeAddr, "--log-dhcp", "--pid-file="}
	d := l.sw.Start("dnsmasq", nil, append(args, dnsmasqArgs...)...)
	if err := d.WaitFor("DHCP, IP range", 20*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, d.Output())
	}
	return l
}

// listen opens a TCP listener inside the namespace h (the socket stays in
// that namespace; the test process keeps serving it).
func listen(t testing.TB, h *netlab.Host, addr string) net.Listener {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked (and so dies with the goroutine)
		// rather than reused in a foreign namespace if restoring fails.
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
		if rerr := netns.Set(orig); rerr == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, h.Name, r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

// jobServer plays bootstrapd's side of the imager contract for tests
// that run before (or without) cmd/bootstrapd: job, progress, done, the
// images, NoCloud data and phone-home.
type jobServer struct {
	t        testing.TB
	mu       sync.Mutex
	job      map[string]any // served to vmMAC; nil: 404
	progress []progressMsg
	done     []doneMsg
	phoned   []string
	files    map[string]string // URL path → file
	nocloud  map[string]string // name → content under /nocloud/<host>/
	cut      func()            // called once when the image download passes half
	cutOnce  *sync.Once
	pxeBoots int
}

type progressMsg struct {
	MAC            string
	Written, Total int64
}

type doneMsg struct {
	MAC   string
	OK    bool
	Error string
}

func base() string { return "http://" + bridgeAddr + ":" + serverPort }

func startJobServer(t *testing.T, l *lan) *jobServer {
	s := &jobServer{t: t, files: map[string]string{}, nocloud: map[string]string{}, cutOnce: &sync.Once{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /imager/job", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		job := s.job
		s.mu.Unlock()
		if job == nil || r.URL.Query().Get("mac") != vmMAC {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(job)
	})
	mux.HandleFunc("POST /imager/progress", func(w http.ResponseWriter, r *http.Request) {
		var m progressMsg
		json.NewDecoder(r.Body).Decode(&m)
		s.mu.Lock()
		s.progress = append(s.progress, m)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /imager/done", func(w http.ResponseWriter, r *http.Request) {
		var m doneMsg
		json.NewDecoder(r.Body).Decode(&m)
		s.mu.Lock()
		s.done = append(s.done, m)
		s.mu.Unlock()
		t.Logf("imager done: %+v", m)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /images/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		p, ok := s.files[r.URL.Path]
		cut, once := s.cut, s.cutOnce
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(p)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
		w.WriteHeader(200)
		if cut == nil {
			io.Copy(w, f)
			return
		}
		io.CopyN(w, f, st.Size()/2)
		once.Do(cut)
		io.Copy(w, f)
	})
	// The iPXE leg of the contract: imager while flagged, the disk after
	// the imager reported success.
	mux.HandleFunc("GET /boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		d := len(s.done) > 0 && s.done[len(s.done)-1].OK
		s.pxeBoots++
		s.mu.Unlock()
		if d {
			io.WriteString(w, "#!ipxe\nsanboot --no-describe --drive 0x80\n")
			return
		}
		fmt.Fprintf(w, "#!ipxe\nkernel %s/assets/imager/vmlinuz console=ttyS0,115200 console=tty0 gate.bootstrap=%s\ninitrd %s/assets/imager/initramfs.gz\nboot\n", base(), base(), base())
	})
	mux.HandleFunc("GET /assets/imager/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		p, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, p)
	})
	mux.HandleFunc("GET /nocloud/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		c, ok := s.nocloud[filepath.Base(r.URL.Path)]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, c)
	})
	mux.HandleFunc("POST /phone-home/", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		s.mu.Lock()
		s.phoned = append(s.phoned, r.Form.Get("hostname"))
		s.mu.Unlock()
		t.Logf("phone home: %v", r.Form)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(listen(t, l.sw, bridgeAddr+":"+serverPort))
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *jobServer) lastDone() (doneMsg, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.done) == 0 {
		return doneMsg{}, false
	}
	return s.done[len(s.done)-1], true
}

func fileSHA256(t testing.TB, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// blankDisk makes a sparse disk file of size bytes.
func blankDisk(t testing.TB, size int64) string {
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	return p
}

// bootImager boots the imager's kernel + initramfs directly (no PXE) on
// disk, in the LAN; QEMU exits when the imager reboots or powers off.
func (l *lan) bootImager(kernel, initrd, disk string, extraArgs ...string) *netlab.Proc {
	return l.sw.Start("qemu-imager", nil, "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", strings.Join(append([]string{"console=ttyS0,115200 panic=-1 gate.bootstrap=" + base()}, extraArgs...), " "),
		"-drive", "file="+disk+",format=raw,if=virtio",
		"-netdev", "tap,id=n0,ifname="+l.tap+",script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac="+vmMAC, "-device", "virtio-rng-pci")
}

// waitExit waits for a QEMU to end by itself (reboot or power-off with -no-reboot).
func waitExit(t *testing.T, p *netlab.Proc, d time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(d):
		p.Kill()
		t.Fatalf("%s did not end within %s:\n%s", p.Name, d, tail(p.Output(), 60))
	}
}
