// Package netlab builds throw-away networks of Linux network namespaces for
// the integration tests: hosts (namespaces), links between them (veth
// pairs), bridges, processes started inside a host, and a teardown that
// runs even when the test fails.
//
// Every name a lab creates carries a prefix unique to the test process, so
// tests running in parallel (or a leftover of a killed run) never collide.
//
// Tests that need root, network namespaces or a real peer call Require
// first: outside CI a missing requirement skips the test with the reason;
// with CI=true it fails, so that CI never passes by skipping.
package netlab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI=true), where nothing may be
// skipped for want of a peer.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require checks that the test runs as root with network namespaces and
// that every named program is on PATH (or an absolute path that exists).
// Outside CI a miss skips the test; in CI it fails it.
//
// Integration tests are named TestIntegration* and are skipped under
// -short (the unit pass of `make test`); `make integration` runs them.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped by -short (make integration runs it)")
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range append([]string{"ip"}, programs...) {
		if strings.HasPrefix(p, "/") {
			if _, err := os.Stat(p); err != nil {
				missing = append(missing, p)
			}
			continue
		}
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s (run `make deps` as root)", strings.Join(missing, ", "))
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Bench marks a side-by-side benchmark (TestSideBySide*): it runs only
// under `make bench` (GATE_BENCH=1), then needs what Require needs.
func Bench(t testing.TB, programs ...string) {
	t.Helper()
	if os.Getenv("GATE_BENCH") != "1" {
		t.Skip("side-by-side benchmark: run by make bench (GATE_BENCH=1)")
	}
	Require(t, programs...)
}

// Report prints one benchmark figure in the form `make bench` collects:
//
//	BENCH <name>: <value> <unit>
func Report(t testing.TB, name string, value float64, unit string) {
	t.Helper()
	line := fmt.Sprintf("BENCH %s: %.4g %s", name, value, unit)
	t.Log(line)
	fmt.Println(line)
}

var labSeq atomic.Int32

// Lab is one test's network.
type Lab struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	hosts  []*Host
}

// New makes an empty lab, torn down at the end of the test.
func New(t testing.TB) *Lab {
	t.Helper()
	pre, err := labPrefix(os.Getenv("GATE_LAB_PREFIX"))
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, prefix: fmt.Sprintf("%s%d%d", pre, os.Getpid()%100000, labSeq.Add(1))}
	t.Cleanup(l.teardown)
	return l
}

// labPrefix is what every lab name starts with, given $GATE_LAB_PREFIX
// (env): env itself (1 to 3 lower-case letters or digits, so that
// interface names keep within 15 bytes), or "t" if it is empty. Runs
// started side by side with distinct prefixes never collide, not even
// with a killed run's leftovers under a reused process id.
func labPrefix(env string) (string, error) {
	if env == "" {
		return "t", nil
	}
	for _, c := range env {
		if len(env) > 3 || !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return "", fmt.Errorf("netlab: GATE_LAB_PREFIX=%q: want 1 to 3 lower-case letters or digits", env)
		}
	}
	return env, nil
}

// Name returns a lab-unique name for an interface or namespace; kernel
// interface names are at most 15 bytes, so keep short the part you give.
func (l *Lab) Name(short string) string {
	n := l.prefix + short
	if len(n) > 15 {
		l.t.Fatalf("netlab: name %q too long for an interface (15 bytes)", n)
	}
	return n
}

// Host is a network namespace.
type Host struct {
	lab  *Lab
	Name string // the short name given to Lab.Host
	NS   string // the namespace's name under /run/netns
}

// Host creates a namespace with loopback up.
func (l *Lab) Host(name string) *Host {
	l.t.Helper()
	h := &Host{lab: l, Name: name, NS: l.prefix + "-" + name}
	l.must("ip", "netns", "add", h.NS)
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	h.MustRun("ip", "link", "set", "lo", "up")
	return h
}

// Link joins a and b with a veth pair. Each side is named ifA in a and ifB
// in b and gets its address (CIDR, may be "" for none); both are set up.
func (l *Lab) Link(a *Host, ifA, addrA string, b *Host, ifB, addrB string) {
	l.t.Helper()
	tmpA, tmpB := l.Name("va"+fmt.Sprint(labSeq.Add(1))), l.Name("vb"+fmt.Sprint(labSeq.Add(1)))
	l.must("ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	l.must("ip", "link", "set", tmpA, "netns", a.NS, "name", ifA)
	l.must("ip", "link", "set", tmpB, "netns", b.NS, "name", ifB)
	for _, s := range []struct {
		h        *Host
		ifn, adr string
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if s.adr != "" {
			s.h.MustRun("ip", "addr", "add", s.adr, "dev", s.ifn)
		}
		s.h.MustRun("ip", "link", "set", s.ifn, "up")
	}
}

// Bridge creates a bridge named br in h with an optional address.
func (h *Host) Bridge(br, addr string) {
	h.lab.t.Helper()
	h.MustRun("ip", "link", "add", br, "type", "bridge")
	if addr != "" {
		h.MustRun("ip", "addr", "add", addr, "dev", br)
	}
	h.MustRun("ip", "link", "set", br, "up")
}

// Attach joins b to the bridge br living in sw with a veth pair: ifB in b
// (with addr, may be ""), the other end enslaved to br.
func (l *Lab) Attach(sw *Host, br string, b *Host, ifB, addr string) {
	l.t.Helper()
	port := fmt.Sprintf("p%d", labSeq.Add(1))
	l.Link(sw, port, "", b, ifB, addr)
	sw.MustRun("ip", "link", "set", port, "master", br)
}

// Tap creates a tap device in h for QEMU, enslaved to br if br != "".
func (h *Host) Tap(tap, br string) {
	h.lab.t.Helper()
	h.MustRun("ip", "tuntap", "add", "dev", tap, "mode", "tap")
	if br != "" {
		h.MustRun("ip", "link", "set", tap, "master", br)
	}
	h.MustRun("ip", "link", "set", tap, "up")
}

// Command returns an exec.Cmd that runs argv inside h.
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS}, argv...)...)
}

// Run runs argv inside h and returns its combined output.
func (h *Host) Run(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := h.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %v: %s", strings.Join(argv, " "), h.Name, err, out)
	}
	return string(out), nil
}

// Output runs argv inside h and returns its standard output only (what
// it prints on standard error goes into the error, if it fails).
func (h *Host) Output(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := h.Command(ctx, argv...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %v: %s", strings.Join(argv, " "), h.Name, err, stderr.Bytes())
	}
	return string(out), nil
}

// MustRun is Run failing the test on error.
func (h *Host) MustRun(argv ...string) string {
	h.lab.t.Helper()
	out, err := h.Run(argv...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return out
}

// Proc is a background process in a host; its output is kept and, with
// -v, echoed to the test log with its name.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *lineBuf
	done chan struct{}
	err  error
}

// Start runs argv in the background inside h; it is killed at teardown.
// Environment entries in env are added to the test's environment.
func (h *Host) Start(name string, env []string, argv ...string) *Proc {
	h.lab.t.Helper()
	cmd := h.Command(context.Background(), argv...)
	cmd.Env = append(os.Environ(), env...)
	lb := &lineBuf{t: h.lab.t, name: h.Name + "/" + name, cond: sync.NewCond(&sync.Mutex{})}
	cmd.Stdout, cmd.Stderr = lb, lb
	// Its own process group, so that Stop reaches its children too; and
	// Wait does not hang on a pipe a grandchild keeps open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	p := &Proc{Name: name, cmd: cmd, out: lb, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		h.lab.t.Fatalf("starting %s in %s: %v", strings.Join(argv, " "), h.Name, err)
	}
	go func() { p.err = cmd.Wait(); lb.close(); close(p.done) }()
	h.lab.t.Cleanup(func() { p.Stop() })
	return p
}

// Stop sends SIGTERM, then SIGKILL after 5 s, and waits.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Signal sends sig to the process alone.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill stops the process and its group at once with SIGKILL.
func (p *Proc) Kill() { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); <-p.done }

// RSSKiB returns the process's resident set size (VmRSS, KiB). `ip netns
// exec` execs the program, so the process is the program itself.
func (p *Proc) RSSKiB() (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kib int
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib)
			return kib, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

// CPUTime returns the CPU time the process has used so far, its threads'
// user and system time (/proc/PID/stat, in clock ticks of 10 ms).
func (p *Proc) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's name (in parentheses, which may hold
	// spaces): state is the 3rd field of stat(5), utime the 14th, stime the 15th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q: no command name", p.cmd.Process.Pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q: too few fields", p.cmd.Process.Pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %q: %w", p.cmd.Process.Pid, b, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done.
func (p *Proc) Err() error { return p.err }

// Output returns everything the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitFor waits until a line containing substr is printed, up to timeout.
func (p *Proc) WaitFor(substr string, timeout time.Duration) error {
	return p.out.waitFor(substr, timeout)
}

type lineBuf struct {
	t      testing.TB
	name   string
	cond   *sync.Cond
	buf    bytes.Buffer
	closed bool
	part   []byte
}

func (b *lineBuf) Write(p []byte) (int, error) {
	b.cond.L.Lock()
	defer b.cond.L.Unlock()
	b.buf.Write(p)
	b.part = append(b.part, p...)
	for {
		i := bytes.IndexByte(b.part, '\n')
		if i < 0 {
			break
		}
		if testing.Verbose() {
			b.t.Logf("[%s] %s", b.name, b.part[:i])
		}
		b.part = b.part[i+1:]
	}
	b.cond.Broadcast()
	return len(p), nil
}

func (b *lineBuf) close() {
	b.cond.L.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.cond.L.Unlock()
}

func (b *lineBuf) String() string {
	b.cond.L.Lock()
	defer b.cond.L.Unlock()
	return b.buf.String()
}

func (b *lineBuf) waitFor(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { b.cond.L.Lock(); b.cond.Broadcast(); b.cond.L.Unlock() })
	defer timer.Stop()
	b.cond.L.Lock()
	defer b.cond.L.Unlock()
	for !strings.Contains(b.buf.String(), substr) {
		if b.closed {
			return fmt.Errorf("%s exited before printing %q", b.name, substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not print %q within %s", b.name, substr, timeout)
		}
		b.cond.Wait()
	}
	return nil
}

// Eventually polls cond every interval until it returns nil or timeout
// passes; it returns the last error.
func Eventually(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

func (l *Lab) must(argv ...string) {
	l.t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

func (l *Lab) teardown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.hosts) - 1; i >= 0; i-- {
		h := l.hosts[i]
		// Kill what is left in the namespace, then delete it (veths go with it).
		// Never this process: a test that moves a locked thread into a
		// namespace (netns.Set) moves the whole process there in `ip netns
		// pids` when Go ran that goroutine on the main thread, and the
		// test binary killed itself ("signal: killed", now and then).
		self := strconv.Itoa(os.Getpid())
		if out, err := exec.Command("ip", "netns", "pids", h.NS).Output(); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				if pid := strings.TrimSpace(sc.Text()); pid != self {
					exec.Command("kill", "-9", pid).Run()
				}
			}
		}
		exec.Command("ip", "netns", "del", h.NS).Run()
	}
	l.hosts = nil
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// Build compiles the main package pkg (e.g. "gate/cmd/upsd") once per test
// process and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "netlab-bin")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out
}
