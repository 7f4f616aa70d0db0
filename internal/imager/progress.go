package imager

// reporter sends progress off the writer's goroutine: the write never
// waits for the network, and a slow or cut link only makes reports
// coarser (the newest value replaces one not yet sent).
type reporter struct {
	ch   chan [2]int64
	done chan struct{}
}

// newReporter runs send for reported values, one at a time, until Close.
func newReporter(send func(written, total int64)) *reporter {
	r := &reporter{ch: make(chan [2]int64, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for v := range r.ch {
			send(v[0], v[1])
		}
	}()
	return r
}

// Report queues a value without blocking (one producer).
func (r *reporter) Report(written, total int64) {
	v := [2]int64{written, total}
	select {
	case r.ch <- v:
	default:
		select { // drop the value not yet sent
		case <-r.ch:
		default:
		}
		select {
		case r.ch <- v:
		default:
		}
	}
}

// Close sends what is queued and waits for the sender.
func (r *reporter) Close() {
	close(r.ch)
	<-r.done
}
