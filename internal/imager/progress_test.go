package imager

import (
	"sync"
	"testing"
	"time"
)

func TestReporterNeverBlocksTheWriter(t *testing.T) {
	var mu sync.Mutex
	var got [][2]int64
	r := newReporter(func(w, total int64) {
		time.Sleep(50 * time.Millisecond) // a slow link
		mu.Lock()
		got = append(got, [2]int64{w, total})
		mu.Unlock()
	})
	start := time.Now()
	for i := int64(1); i <= 100; i++ {
		r.Report(i, 100)
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("100 reports took %s: the writer waited for the network", d)
	}
	r.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || len(got) > 3 || got[len(got)-1] != [2]int64{100, 100} {
		t.Errorf("sent %v, want at most a few reports ending with the last one", got)
	}
}
