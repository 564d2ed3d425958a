package server

import (
	"context"
	"sync"
)

// limiter admits at most cap(slots) generations at once and lets at most
// queue more wait for a slot; beyond that acquire fails at once.
type limiter struct {
	slots    chan struct{}
	mu       sync.Mutex
	waiting  int
	queue    int
	onChange func(busy, waiting int)
}

func newLimiter(parallel, queue int, onChange func(busy, waiting int)) *limiter {
	return &limiter{slots: make(chan struct{}, parallel), queue: queue, onChange: onChange}
}

func (l *limiter) changed() {
	if l.onChange != nil {
		l.onChange(len(l.slots), l.waiting)
	}
}

// acquire takes a slot, waiting in the queue while there is room in it. The
// returned release gives the slot back (call it exactly once).
func (l *limiter) acquire(ctx context.Context) (release func(), err error) {
	release = func() {
		<-l.slots
		l.mu.Lock()
		l.changed()
		l.mu.Unlock()
	}
	l.mu.Lock()
	select {
	case l.slots <- struct{}{}:
		l.changed()
		l.mu.Unlock()
		return release, nil
	default:
	}
	if l.waiting >= l.queue {
		l.mu.Unlock()
		return nil, queueFull()
	}
	l.waiting++
	l.changed()
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.changed()
		l.mu.Unlock()
	}()
	select {
	case l.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
