package daemon

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRaiseFileLimit(t *testing.T) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &l) })
	// A low soft limit is raised to what is asked.
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: l.Max}); err != nil {
		t.Fatal(err)
	}
	if got, err := RaiseFileLimit(l.Max); err != nil || got != l.Max {
		t.Fatalf("RaiseFileLimit(%d) = %d, %v", l.Max, got, err)
	}
	// Asking for less changes nothing.
	if got, err := RaiseFileLimit(10); err != nil || got != l.Max {
		t.Errorf("RaiseFileLimit(10) = %d, %v", got, err)
	}
	// Above the hard limit: raised with CAP_SYS_RESOURCE (the gate's
	// daemons have it), else refused with the soft limit at the hard one.
	want := l.Max + 1000
	got, err := RaiseFileLimit(want)
	var now unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &now)
	switch {
	case errors.Is(err, unix.EPERM):
		if got != l.Max || now.Cur != l.Max {
			t.Errorf("refused raise: got %d, limit %d, want %d", got, now.Cur, l.Max)
		}
		t.Logf("no CAP_SYS_RESOURCE here: the hard limit stays %d", l.Max)
	case err != nil:
		t.Fatal(err)
	case got != want || now.Cur != want || now.Max != want:
		t.Errorf("RaiseFileLimit(%d) = %d, limit now %d/%d", want, got, now.Cur, now.Max)
	}
}
