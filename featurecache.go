package snapvlm

import (
	"container/list"
	"context"
	"errors"
	"sync"

	"github.com/snapvlm/snapvlm/internal/prompt"
)

// featureEntry is one image's vision-encoder output.
type featureEntry struct {
	features []float32
	grid     prompt.ImageGrid
	frames   int
	video    *videoEntry // set for a video's sampled frames
}

// featureCache keeps the features of recently seen images (keyed by their
// bytes and preprocessing options), so follow-up questions about an image do
// not run the vision encoder again. Least recently used entries go first.
// Concurrent requests for an image being encoded wait for that one encoding
// instead of starting their own (singleflight).
type featureCache struct {
	mu       sync.Mutex
	size     int
	order    *list.List // of key, front = most recent
	items    map[[32]byte]*list.Element
	vals     map[[32]byte]*featureEntry
	inflight map[[32]byte]*featureCall
}

// featureCall is an encoding in progress; done closes when ent or err is set.
type featureCall struct {
	done chan struct{}
	ent  *featureEntry
	err  error
}

func newFeatureCache(size int) *featureCache {
	return &featureCache{size: size, order: list.New(), items: map[[32]byte]*list.Element{}, vals: map[[32]byte]*featureEntry{}, inflight: map[[32]byte]*featureCall{}}
}

func (c *featureCache) get(k [32]byte) (*featureEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(k)
}

func (c *featureCache) getLocked(k [32]byte) (*featureEntry, bool) {
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return c.vals[k], true
}

func (c *featureCache) putLocked(k [32]byte, v *featureEntry) {
	if c.size <= 0 {
		return
	}
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		c.vals[k] = v
		return
	}
	c.items[k] = c.order.PushFront(k)
	c.vals[k] = v
	for c.order.Len() > c.size {
		old := c.order.Back()
		key := old.Value.([32]byte)
		c.order.Remove(old)
		delete(c.items, key)
		delete(c.vals, key)
	}
}

// do returns the features of k: from the cache, from an encoding of k already
// running (waiting for it), or by running encode. computed reports whether
// this call ran encode. A waiter whose ctx ends stops waiting; when the
// running encoding was cancelled by its own caller, a waiter that is still
// live takes over and encodes itself.
func (c *featureCache) do(ctx context.Context, k [32]byte, encode func() (*featureEntry, error)) (ent *featureEntry, computed bool, err error) {
	for {
		c.mu.Lock()
		if ent, ok := c.getLocked(k); ok {
			c.mu.Unlock()
			return ent, false, nil
		}
		if call, ok := c.inflight[k]; ok {
			c.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
			if call.err == nil {
				return call.ent, false, nil
			}
			if isCancel(call.err) && ctx.Err() == nil {
				continue // the leader gave up; try again ourselves
			}
			return nil, false, call.err
		}
		call := &featureCall{done: make(chan struct{})}
		c.inflight[k] = call
		c.mu.Unlock()

		call.ent, call.err = encode()
		c.mu.Lock()
		delete(c.inflight, k)
		if call.err == nil {
			c.putLocked(k, call.ent)
		}
		c.mu.Unlock()
		close(call.done)
		return call.ent, call.err == nil, call.err
	}
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
