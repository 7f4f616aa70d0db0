package bastion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditLogRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	a, err := OpenAuditLog(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 39) + "\n" // 40 bytes
	for i := 0; i < 5; i++ {
		if _, err := a.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	if len(cur) != 40 || len(old) != 80 {
		t.Errorf("after 5 lines of 40 bytes with max 100: current %d bytes, previous %d (want 40, 80)", len(cur), len(old))
	}
	// Reopening continues the current file and counts what it holds.
	a, _ = OpenAuditLog(p, 100)
	a.Write([]byte(line))
	a.Write([]byte(line))
	a.Close()
	cur, _ = os.ReadFile(p)
	if len(cur) != 40 {
		t.Errorf("after reopening: current %d bytes, want 40", len(cur))
	}
}
