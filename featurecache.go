package snapvlm

import (
	"container/list"
	"sync"

	"github.com/snapvlm/snapvlm/internal/prompt"
)

// featureEntry is one image's vision-encoder output.
type featureEntry struct {
	features []float32
	grid     prompt.ImageGrid
	frames   int
}

// featureCache keeps the features of recently seen images (keyed by their
// bytes and preprocessing options), so follow-up questions about an image do
// not run the vision encoder again. Least recently used entries go first.
type featureCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of key, front = most recent
	items map[[32]byte]*list.Element
	vals  map[[32]byte]*featureEntry
}

func newFeatureCache(size int) *featureCache {
	return &featureCache{size: size, order: list.New(), items: map[[32]byte]*list.Element{}, vals: map[[32]byte]*featureEntry{}}
}

func (c *featureCache) get(k [32]byte) (*featureEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return c.vals[k], true
}

func (c *featureCache) put(k [32]byte, v *featureEntry) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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
