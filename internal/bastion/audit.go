package bastion

import (
	"fmt"
	"os"
	"sync"
)

// AuditLog appends audit records to a file on /perm. When the file would
// grow past Max bytes it is renamed to path.1 (replacing the previous one)
// and a new file begins, so the log never takes more than twice Max.
type AuditLog struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// OpenAuditLog opens (or creates) the audit file at path.
func OpenAuditLog(path string, max int64) (*AuditLog, error) {
	a := &AuditLog{path: path, max: max}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *AuditLog) open() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	a.f, a.size = f, st.Size()
	return nil
}

// Write appends one record (callers write whole lines).
func (a *AuditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		if err := a.open(); err != nil {
			return 0, err
		}
	}
	if a.max > 0 && a.size > 0 && a.size+int64(len(p)) > a.max {
		a.f.Close()
		a.f = nil
		if err := os.Rename(a.path, a.path+".1"); err != nil {
			return 0, fmt.Errorf("audit log rotation: %w", err)
		}
		if err := a.open(); err != nil {
			return 0, err
		}
	}
	n, err := a.f.Write(p)
	a.size += int64(n)
	if err == nil {
		err = a.f.Sync()
	}
	return n, err
}

// Close closes the file.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
