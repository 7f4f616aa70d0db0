package upsd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gate/integration/netlab"
	"gate/integration/site"
)

// TestIntegrationUPSExactAsDebian: Debian's NUT tools get the same answers
// from the gate's upsd as from Debian's upsd serving the same dummy-ups:
// upsc, upsrw -l (descriptions and types are the source's), upscmd -l,
// upscmd with a parameter, and the source's own ERR word for a SET it
// refuses.
func TestIntegrationUPSExactAsDebian(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startUpsd()
	gate, src := "ups@192.168.1.2", "ups@"+site.UPSSourceLAN.String()
	admin := l.password("admin")
	for _, tc := range []struct {
		name           string
		gateArgs, args []string // the same command, as the gate's admin and as the source's account
	}{
		{"upsc", []string{"upsc", gate}, []string{"upsc", src}},
		{"upsrw -l", []string{"upsrw", "-l", gate}, []string{"upsrw", "-l", src}},
		{"upscmd -l", []string{"upscmd", "-l", gate}, []string{"upscmd", "-l", src}},
		{"upscmd with a parameter", []string{"upscmd", "-u", "admin", "-p", admin, gate, "load.off", "30"}, []string{"upscmd", "-u", "mon", "-p", "sourcepw", src, "load.off", "30"}},
		{"SET too long", []string{"upsrw", "-s", "ups.firmware=0123456789abcdefXYZ", "-u", "admin", "-p", admin, gate}, []string{"upsrw", "-s", "ups.firmware=0123456789abcdefXYZ", "-u", "mon", "-p", "sourcepw", src}},
		{"SET unknown", []string{"upsrw", "-s", "ups.nothing=1", "-u", "admin", "-p", admin, gate}, []string{"upsrw", "-s", "ups.nothing=1", "-u", "mon", "-p", "sourcepw", src}},
	} {
		run := func(argv []string) string {
			out, err := l.gate.Run(argv...) // both ways from the gate's namespace
			out = strings.ReplaceAll(out, "Init SSL without certificate database\n", "")
			if err != nil {
				out += "(failed)\n"
			}
			return out
		}
		var ours, theirs string
		// The gate reads the source's types and descriptions when it
		// starts: wait until it serves them.
		err := netlab.Eventually(20*time.Second, time.Second, func() error {
			ours, theirs = run(tc.gateArgs), run(tc.args)
			if ours != theirs {
				return fmt.Errorf("differ")
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: the gate's answer differs from Debian's upsd:\n%s", tc.name, lineDiff(theirs, ours))
		} else {
			t.Logf("%s: identical (%d lines)", tc.name, strings.Count(ours, "\n"))
		}
	}
}

// lineDiff lists the lines only one side has.
func lineDiff(debian, ours string) string {
	d, o := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(debian, "\n") {
		d[l] = true
	}
	for _, l := range strings.Split(ours, "\n") {
		o[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(debian, "\n") {
		if !o[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(ours, "\n") {
		if !d[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(same lines, another order)\n--- Debian:\n" + debian + "--- ours:\n" + ours
	}
	return b.String()
}
