package alert

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"gate/internal/atomicfile"
)

// Queue is a bounded FIFO of messages for one channel, written to a file
// atomically on every change (a handful of messages; changes are rare).
// When full, the oldest message is dropped and the count is carried on to
// the next message out.
type Queue struct {
	mu   sync.Mutex
	path string
	max  int
	q    queueFile
}

type queueFile struct {
	Events  []Event `json:"events"`
	Dropped int     `json:"dropped,omitempty"` // dropped before Events[0]
}

// OpenQueue loads the queue at path (absent: empty). A corrupt file is
// set aside (path.corrupt) and the queue starts empty.
func OpenQueue(path string, max int) (*Queue, error) {
	q := &Queue{path: path, max: max}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		return q, nil
	case err != nil:
		return nil, fmt.Errorf("alert queue %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &q.q); err != nil {
		os.Rename(path, path+".corrupt")
		q.q = queueFile{}
	}
	for len(q.q.Events) > max {
		q.q.Events = q.q.Events[1:]
		q.q.Dropped++
	}
	return q, nil
}

func (q *Queue) save() error {
	b, err := json.Marshal(q.q)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(q.path, b, 0o600); err != nil {
		return fmt.Errorf("alert queue %s: %w", q.path, err)
	}
	return nil
}

// Push appends e, dropping the oldest when full.
func (q *Queue) Push(e Event) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.q.Events = append(q.q.Events, e)
	for len(q.q.Events) > q.max {
		q.q.Events = q.q.Events[1:]
		q.q.Dropped++
	}
	return q.save()
}

// Peek returns the oldest message (with the count of messages dropped
// before it).
func (q *Queue) Peek() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q.Events) == 0 {
		return Event{}, false
	}
	e := q.q.Events[0]
	e.Dropped += q.q.Dropped
	return e, true
}

// Pop removes the oldest message (delivered).
func (q *Queue) Pop() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q.Events) == 0 {
		return nil
	}
	q.q.Events = q.q.Events[1:]
	q.q.Dropped = 0
	return q.save()
}

// Dropped returns how many messages the full queue dropped since the last
// delivery.
func (q *Queue) Dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.q.Dropped
}

// Len returns how many messages wait.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q.Events)
}
