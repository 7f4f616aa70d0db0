package daemon

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsConvention: every metric a daemon registers follows the one
// naming scheme (gate_<area>_..., counters end in _total and only they)
// and is documented in the README's "Metrics" section.
func TestMetricsConvention(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	i := strings.Index(doc, "\n## Metrics\n")
	if i < 0 {
		t.Fatal("README has no Metrics section")
	}
	doc = doc[i+1:]
	if j := strings.Index(doc[3:], "\n## "); j >= 0 {
		doc = doc[:j+3]
	}
	opts := regexp.MustCompile(`metrics\.New(Counter|Gauge)(?:Vec|Func)?\(metrics\.Opts\{\s*Name:\s*"([^"]+)"`)
	// Names given some other way (a collector's own families): any
	// gate_ literal in a file that uses internal/metrics.
	literal := regexp.MustCompile(`"(gate_[a-z0-9_]+)"`)
	seen := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "build" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		check := func(name, kind string) {
			seen++
			if !strings.HasPrefix(name, "gate_") {
				t.Errorf("%s: metric %s does not start with gate_", p, name)
			}
			switch {
			case kind == "Counter" && !strings.HasSuffix(name, "_total"):
				t.Errorf("%s: counter %s does not end in _total", p, name)
			case kind != "Counter" && kind != "" && strings.HasSuffix(name, "_total"):
				t.Errorf("%s: %s %s ends in _total (only counters do)", p, strings.ToLower(kind), name)
			}
			if !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("%s: metric %s is not in the README's Metrics section", p, name)
			}
		}
		if !strings.Contains(string(b), `"gate/internal/metrics"`) {
			return nil
		}
		done := map[string]bool{}
		for _, m := range opts.FindAllStringSubmatch(string(b), -1) {
			check(m[2], m[1])
			done[m[2]] = true
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			if !done[m[1]] {
				check(m[1], "")
				done[m[1]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 30 {
		t.Fatalf("found only %d metrics: the pattern no longer matches the code", seen)
	}
}
