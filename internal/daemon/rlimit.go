package daemon

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// FileLimit is the open-file limit every daemon asks for: the kernel's
// default hard limit (4096) lets a flood of connections exhaust a
// daemon's descriptors long before the servers' own connection caps
// would (tcpserve.DefaultMax per listener, plus files and sockets).
const FileLimit = 65536

// RaiseFileLimit raises RLIMIT_NOFILE, soft and hard, to at least want
// (Go itself only lifts the soft limit to the hard one). It returns the
// soft limit in force afterwards; an error says the raise was refused
// (no CAP_SYS_RESOURCE), the limit then stays as it was.
func RaiseFileLimit(want uint64) (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if l.Cur >= want {
		return l.Cur, nil
	}
	n := unix.Rlimit{Cur: want, Max: max(l.Max, want)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &n); err != nil {
		// Not allowed above the hard limit: take what there is.
		l.Cur = l.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &l)
		return l.Cur, fmt.Errorf("setrlimit NOFILE to %d: %w", want, err)
	}
	return want, nil
}
