package powerstate

import (
	"path/filepath"
	"testing"
)

func TestWriterRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "power.json")
	w := &Writer{Path: p}
	w.Plan("idle")
	w.Host("ceph-1", "down")
	first := w.State().Hosts["ceph-1"].Since
	w.Host("ceph-1", "down") // the same state: since is kept
	w.Return("group ceph")
	w.Host("ceph-2", "missing")
	s, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Plan != "idle" || s.Return != "group ceph" || s.Hosts["ceph-1"].State != "down" || s.Hosts["ceph-2"].State != "missing" {
		t.Fatalf("read back %+v", s)
	}
	if !s.Hosts["ceph-1"].Since.Equal(first) {
		t.Errorf("since moved on a repeated state: %v → %v", first, s.Hosts["ceph-1"].Since)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("reading a missing file gave no error")
	}
}
