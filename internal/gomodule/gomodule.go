// Package gomodule finds a dependency of the gate module on disk the way
// the go tool does, downloading it into the module cache when it is not
// there yet: a fresh machine with an empty cache builds the image with no
// step before it.
package gomodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// Module describes a Go module as `go mod download -json` does.
type Module struct {
	Path    string
	Version string
	Dir     string
	Error   string
}

// Download returns the version and directory of module path as the module
// in dir requires it, downloading it if needed.
func Download(ctx context.Context, dir, path string) (Module, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", path)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var m Module
	// go mod download -json prints the Error field and exits 1 for a
	// module it cannot fetch: that message says more than the exit status.
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		return Module{}, fmt.Errorf("getting %s: %s", path, m.Error)
	}
	if err != nil {
		return Module{}, fmt.Errorf("getting %s: go mod download: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	if m.Dir == "" {
		return Module{}, fmt.Errorf("getting %s: no directory in go mod download's answer %q", path, out)
	}
	return m, nil
}
