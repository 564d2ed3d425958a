package snapvlm

import (
	"errors"
	"sync"
)

// ErrClosed is returned by the calls of a Model (and of its Chats) made after
// Close.
var ErrClosed = errors.New("snapvlm: the model is closed")

// ErrPromptTooLong is returned (wrapped, with the counts) when the prompt
// does not fit the model's context. A Chat leaves its oldest turns out
// instead.
var ErrPromptTooLong = errors.New("the prompt is too long for the model")

// lifecycle lets Close wait for the calls that use the ONNX Runtime sessions
// and refuse the calls made after it: releasing a session while a run uses
// it crashes the C library.
type lifecycle struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
	done    chan struct{} // closed when the sessions are released
	err     error         // what releasing them returned
}

// enter registers a call; it returns ErrClosed once Close has begun. The
// caller must call done when it no longer uses the sessions.
func (l *lifecycle) enter() (done func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	l.running.Add(1)
	return l.running.Done, nil
}

// close refuses new calls, waits for the running ones, then runs release
// once. Concurrent and later calls wait for that and return nil.
func (l *lifecycle) close(release func() error) error {
	l.mu.Lock()
	if l.closed {
		done := l.done
		l.mu.Unlock()
		<-done
		return nil
	}
	l.closed = true
	l.done = make(chan struct{})
	l.mu.Unlock()
	l.running.Wait()
	l.err = release()
	close(l.done)
	return l.err
}
