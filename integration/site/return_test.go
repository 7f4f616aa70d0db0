package site

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"gate/integration/netlab"
	"gate/internal/hostcmd"
)

// installGateKey plays cloud-init's part on the namespace hosts: each
// fetches its user-data from the gate's bootstrapd (as the host, from its
// address) and installs what it says for the gate's shutdown key: the
// forced command (in the host's own bin directory, the namespaces share
// the test machine's /usr/local) and the authorized_keys line (its
// command= pointing there). ceph and kubectl are recorders that log each
// call with its time to the host's commands.log.
func (j *journey) installGateKey() error {
	for _, sv := range j.s.Servers {
		ud, err := sv.Host.Output("curl", "-sf", "--max-time", "20", fmt.Sprintf("http://%s:8080/nocloud/user-data", GateLAN))
		if err != nil {
			return fmt.Errorf("%s's user-data from the gate: %v\n%s", sv.Name, err, ud)
		}
		var doc struct {
			WriteFiles []struct{ Path, Content string } `yaml:"write_files"`
		}
		if err := yaml.Unmarshal([]byte(ud), &doc); err != nil {
			return fmt.Errorf("%s's user-data: %v", sv.Name, err)
		}
		bin := j.s.HostBin(sv)
		local := filepath.Join(bin, "gate-command")
		var script, key string
		for _, w := range doc.WriteFiles {
			switch {
			case w.Path == hostcmd.ScriptPath:
				script = w.Content
			case strings.HasSuffix(w.Path, "/.ssh/authorized_keys"):
				key = strings.TrimSpace(w.Content)
			}
		}
		if script == "" || !strings.Contains(key, `command="`+hostcmd.ScriptPath+`"`) {
			return fmt.Errorf("%s's user-data installs no restricted shutdown key:\n%s", sv.Name, ud)
		}
		if err := os.WriteFile(local, []byte(script), 0o755); err != nil {
			return err
		}
		for _, c := range []string{"ceph", "kubectl"} {
			rec := fmt.Sprintf("#!/bin/sh\necho \"$(date +%%s.%%N) %s $*\" >> %s\n", c, j.commandsLog(sv.Name))
			if err := os.WriteFile(filepath.Join(bin, c), []byte(rec), 0o755); err != nil {
				return err
			}
		}
		if err := j.s.AddAuthorizedKey(sv, strings.Replace(key, hostcmd.ScriptPath, local, 1)); err != nil {
			return err
		}
	}
	return nil
}

// commandsLog is where host's ceph and kubectl recorders write.
func (j *journey) commandsLog(host string) string {
	return filepath.Join(j.dir, host+".commands.log")
}

// hostCommand is the time of the first line of host's commands.log that
// contains cmd (false: none).
func (j *journey) hostCommand(host, cmd string) (float64, bool) {
	b, _ := os.ReadFile(j.commandsLog(host))
	for _, l := range strings.Split(string(b), "\n") {
		if at, rest, ok := strings.Cut(l, " "); ok && strings.Contains(rest, cmd) {
			var f float64
			fmt.Sscan(at, &f)
			return f, true
		}
	}
	return 0, false
}

// preStepsRan checks step 6's pre-steps on the hosts, run over SSH with
// the key cloud-init installed: compute-1 drained before it went down,
// noout set on ceph-1 after compute-1 and before the ceph group went down.
func (j *journey) preStepsRan(down map[string]float64) error {
	drain, ok := j.hostCommand("compute-1", "kubectl drain compute-1")
	if !ok {
		return fmt.Errorf("compute-1 was not drained (its commands: %q)\n%s", j.hostLog("compute-1"), Tail(j.gate.Proc.Output(), 20))
	}
	if drain > down["compute-1"] {
		return fmt.Errorf("compute-1 drained at %.2f, after it went down at %.2f", drain, down["compute-1"])
	}
	noout, ok := j.hostCommand("ceph-1", "ceph osd set noout")
	if !ok {
		return fmt.Errorf("noout was not set on ceph-1 (its commands: %q)", j.hostLog("ceph-1"))
	}
	for _, n := range []string{"ceph-1", "ceph-2", "ceph-3"} {
		if noout > down[n] || noout < down["compute-1"] {
			return fmt.Errorf("noout set at %.2f: compute-1 down at %.2f, %s at %.2f", noout, down["compute-1"], n, down[n])
		}
	}
	return nil
}

func (j *journey) hostLog(host string) string {
	b, _ := os.ReadFile(j.commandsLog(host))
	return string(b)
}

// siteWhole: after step 7 (mains back, the gate booted again), the
// gate's upsd runs the return plan from its journal on /perm: the hosts
// are up, noout is unset on ceph-1 and compute-1 uncordoned, each exactly
// once, and `gate hosts` (from the LAN) shows every host up and the return
// plan done.
func (j *journey) siteWhole() error {
	if j.gate == nil || j.mainsBackAt.IsZero() {
		return fmt.Errorf("the gate never came back (step 7)")
	}
	lan := j.s.Servers[0].Host
	var out string
	err := netlab.Eventually(5*time.Minute, 3*time.Second, func() error {
		var err error
		if out, err = lan.Output(j.gateCLI, "hosts", "-c", j.siteFile); err != nil {
			return fmt.Errorf("gate hosts: %v\n%s", err, out)
		}
		if !strings.Contains(out, "return plan after the outage: done") {
			return fmt.Errorf("the return plan is not done:\n%s", out)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%v\n--- gate:\n%s", err, Tail(j.gate.Proc.Output(), 20))
	}
	done := time.Since(j.mainsBackAt)
	for _, sv := range j.s.Servers {
		if l := hostLine(out, sv.Name); !strings.Contains(l, " up (") {
			return fmt.Errorf("gate hosts: %s is not up:\n%s", sv.Name, out)
		}
	}
	for host, cmds := range map[string][2]string{
		"ceph-1":    {"ceph osd set noout", "ceph osd unset noout"},
		"compute-1": {"kubectl drain compute-1", "kubectl uncordon compute-1"},
	} {
		set, _ := j.hostCommand(host, cmds[0])
		unset, ok := j.hostCommand(host, cmds[1])
		if !ok || unset < set {
			return fmt.Errorf("%s: %q not run after %q; its commands:\n%s", host, cmds[1], cmds[0], j.hostLog(host))
		}
		if n := strings.Count(j.hostLog(host), cmds[1]); n != 1 {
			return fmt.Errorf("%s: %q run %d times", host, cmds[1], n)
		}
	}
	fmt.Printf("JOURNEY    mains back → return plan done (hosts up, noout unset, compute-1 uncordoned) in %.1fs; gate hosts:\n%s", done.Seconds(), indent(out))
	return nil
}
