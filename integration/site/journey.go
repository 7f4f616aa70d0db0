package site

import (
	"fmt"
	"html"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Step is one step of a journey.
type Step struct {
	Name string
	// Missing, when it returns non-empty, says which part of the gate the
	// step needs has not landed yet: the step is reported MISSING, not run.
	Missing func() string
	Run     func() error
}

// StepResult is what happened to one step.
type StepResult struct {
	Name     string
	Outcome  string // passed, FAILED, MISSING, not reached
	Detail   string
	Duration time.Duration
}

// RunJourney runs the steps in order and prints a table of outcomes with
// each step's duration. It stops at the first step that fails (with
// JOURNEY_KEEP_GOING=1 in the environment it runs the later steps anyway,
// to see every failure of a long play at once), and fails the test saying
// which. Missing steps are reported, never counted as passed; steps after
// a missing one still run when they can.
func RunJourney(t *testing.T, steps []Step) []StepResult {
	t.Helper()
	var res []StepResult
	failed := ""
	keepGoing := os.Getenv("JOURNEY_KEEP_GOING") == "1"
	for _, s := range steps {
		r := StepResult{Name: s.Name}
		switch {
		case failed != "" && !keepGoing:
			r.Outcome = "not reached"
		case s.Missing != nil && s.Missing() != "":
			r.Outcome, r.Detail = "MISSING", s.Missing()
		default:
			start := time.Now()
			err := s.Run()
			r.Duration = time.Since(start)
			if err != nil {
				r.Outcome, r.Detail = "FAILED", err.Error()
				if failed == "" {
					failed = s.Name
				}
			} else {
				r.Outcome = "passed"
			}
		}
		res = append(res, r)
		fmt.Printf("JOURNEY %-60s %-11s %8.1fs %s\n", r.Name, r.Outcome, r.Duration.Seconds(), firstLine(r.Detail))
	}
	if failed != "" {
		for _, r := range res {
			if r.Outcome == "FAILED" {
				t.Fatalf("journey failed at step %q: %s", r.Name, r.Detail)
			}
		}
	}
	return res
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Placeholder reports, for a main package of the repository (e.g.
// "cmd/upsd"), whether it is still the placeholder written before its
// issue landed; "" when it is real.
func Placeholder(pkg string) string {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), pkg, "main.go"))
	if err != nil {
		if pkg == "gate" {
			return ""
		}
		return pkg + " does not exist"
	}
	if strings.Contains(string(b), "placeholder daemon until its issue lands") {
		return pkg + " is still a placeholder"
	}
	return ""
}

// CommandPlaceholder reports whether gate's subcommand file (e.g.
// "image.go") is still a placeholder.
func CommandPlaceholder(file string) string {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "gate", file))
	if err != nil {
		return "gate/" + file + " does not exist"
	}
	if strings.Contains(string(b), "is a placeholder until its issue lands") {
		return "gate/" + file + " is still a placeholder"
	}
	return ""
}

// Problems picks from a gate's console the lines that show a service
// failing (gokrazy restarting it, a permission or I/O error, a panic),
// each once (without its time stamp), at most 12.
func Problems(console string) string {
	var out []string
	seen := map[string]bool{}
	for _, l := range strings.Split(console, "\n") {
		bad := false
		for _, sig := range []string{"permission denied", "input/output error", "panic:", "attempt 3, starting", "setting time failed", "no such host", "connection refused"} {
			if strings.Contains(l, sig) {
				bad = true
			}
		}
		key := stripStamp(l)
		if !bad || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, "  "+strings.TrimSpace(l))
		if len(out) == 12 {
			break
		}
	}
	return strings.Join(out, "\n")
}

// stripStamp drops a log line's leading date and time.
func stripStamp(l string) string {
	f := strings.Fields(l)
	for len(f) > 0 && (strings.Count(f[0], "/") == 2 || strings.Count(f[0], ":") == 2 || strings.HasPrefix(f[0], "[")) {
		f = f[1:]
	}
	return strings.Join(f, " ")
}

// RestartingServices reads gokrazy's overview page (GET / with the
// password, HTML) and returns one line per service gokrazy shows as
// restarting, with its last stderr line: the failures of gokrazy's own
// programs (ntp, dhcp, staticip) never reach the serial console.
func RestartingServices(page string) []string {
	var out []string
	for _, row := range strings.Split(page, "<tr>")[1:] {
		if !strings.Contains(row, `label-danger">restarting`) {
			continue
		}
		path := "?"
		if _, rest, ok := strings.Cut(row, "status?path="); ok {
			if p, _, ok := strings.Cut(rest, `"`); ok {
				if u, err := url.QueryUnescape(p); err == nil {
					path = u
				}
			}
		}
		line := path + " restarting"
		if _, rest, ok := strings.Cut(row, "stderr: </small>"); ok {
			last, _, _ := strings.Cut(rest, "<br/>")
			line += ": " + html.UnescapeString(strings.TrimSpace(last))
		}
		out = append(out, line)
	}
	return out
}

// PageText is an HTML page's text: tags dropped (<br> and block ends as
// line breaks), entities unescaped, blank lines left out.
func PageText(page string) string {
	var b strings.Builder
	for len(page) > 0 {
		i := strings.IndexByte(page, '<')
		if i < 0 {
			b.WriteString(page)
			break
		}
		b.WriteString(page[:i])
		j := strings.IndexByte(page[i:], '>')
		if j < 0 {
			break
		}
		tag := strings.ToLower(page[i+1 : i+j])
		for _, t := range []string{"br", "/p", "/div", "/tr", "/pre", "/h1", "/h2", "/h3", "/li"} {
			if tag == t || strings.HasPrefix(tag, t+" ") || strings.HasPrefix(tag, t+"/") {
				b.WriteByte('\n')
			}
		}
		page = page[i+j+1:]
	}
	var lines []string
	for _, l := range strings.Split(html.UnescapeString(b.String()), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// GokrazyAuth writes a curl configuration file (0600) into dir with the
// gate's gokrazy password read from secrets, and returns its path: curl
// -K path, so that the password is on no command line, nor in an error
// that quotes one.
func GokrazyAuth(dir, secrets string) (string, error) {
	pw, err := os.ReadFile(filepath.Join(secrets, "gokrazy-password"))
	if err != nil {
		return "", fmt.Errorf("the gokrazy password: %w", err)
	}
	p := filepath.Join(dir, "gokrazy-auth.curlrc")
	line := fmt.Sprintf("user = \"gokrazy:%s\"\n", strings.TrimSpace(string(pw)))
	if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
		return "", err
	}
	return p, nil
}
