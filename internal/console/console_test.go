package console

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestOutput(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "console")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		on          bool
		path        string
		wantConsole string
	}{
		{"off", false, dev, ""},
		{"on", true, dev, "line\n"},
		{"on, no console", true, filepath.Join(dir, "absent"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(dev, nil, 0o600)
			var own bytes.Buffer
			if _, err := output(&own, tc.on, tc.path).Write([]byte("line\n")); err != nil {
				t.Fatal(err)
			}
			if own.String() != "line\n" {
				t.Errorf("own output %q, want the line", own.String())
			}
			got, _ := os.ReadFile(dev)
			if string(got) != tc.wantConsole {
				t.Errorf("console got %q, want %q", got, tc.wantConsole)
			}
		})
	}
}
