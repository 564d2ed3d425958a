package snapvlm

import (
	"sync"

	"github.com/snapvlm/snapvlm/internal/decoder"
)

// held is what a decoder cache holds, position by position: the token ids
// and, for the image tokens among them, the images and videos whose
// features fill them.
type held struct {
	ids       []int64
	imageKeys [][32]byte // feature-cache keys of the images and videos, in order
	imageRows []int      // how many image tokens each of them fills
}

// common returns how many leading positions a and b share: the same ids
// and, at image tokens, the same row of the same image's features (the
// features of one image fill its image tokens in order, the images follow
// each other). imageTok is the image token id. A common prefix may end
// inside an image: its first rows are the same in both.
func common(a, b held, imageTok int64) int {
	img, left := -1, 0 // the image whose rows fill the image tokens, rows left
	n := 0
	for ; n < len(a.ids) && n < len(b.ids) && a.ids[n] == b.ids[n]; n++ {
		if a.ids[n] != imageTok {
			continue
		}
		if left == 0 {
			// The first row of the next image (an answer's <image>
			// token has no image: it runs past the last one).
			img++
			if img >= min(len(a.imageKeys), len(b.imageKeys), len(a.imageRows), len(b.imageRows)) ||
				a.imageKeys[img] != b.imageKeys[img] || a.imageRows[img] != b.imageRows[img] || a.imageRows[img] <= 0 {
				break
			}
			left = a.imageRows[img]
		}
		left--
	}
	return n
}

// promptCache keeps the decoder caches of recent requests (prompt and
// answer) for later requests that start the same way: same system prompt,
// same photo, the conversation so far. Entries are compact snapshots
// (decoder.Snapshot: exactly their tokens' key/value rows), least recently
// used first out when their bytes pass the budget. A request copies the
// prefix it shares with the best entry into a cache of its own, so
// concurrent requests never share a decoder state and the entries never
// change. A nil *promptCache keeps nothing.
type promptCache struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	entries []*prefixEntry // least recently used first
	closed  bool
}

type prefixEntry struct {
	held
	snap *decoder.Snapshot
}

// newPromptCache returns a cache of at most mb MiB, nil for mb <= 0.
func newPromptCache(mb int) *promptCache {
	if mb <= 0 {
		return nil
	}
	return &promptCache{budget: int64(mb) << 20}
}

// best returns the entry sharing the longest prefix with the prompt h and
// how many tokens of it serve h: at most all of h but its last token,
// whose logits start the answer. n is 0 when no entry helps.
func (c *promptCache) best(h held, imageTok int64) (snap *decoder.Snapshot, n int) {
	if c == nil || len(h.ids) < 2 {
		return nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at := -1
	for i, e := range c.entries {
		if k := min(common(e.held, h, imageTok), len(h.ids)-1); k > n {
			at, n = i, k
		}
	}
	if at < 0 {
		return nil, 0
	}
	e := c.entries[at]
	c.touch(at)
	return e.snap, n
}

// touch makes entry i the most recently used.
func (c *promptCache) touch(i int) {
	e := c.entries[i]
	c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
}

// add keeps a snapshot of what kv holds. Entries that hold a prefix of it
// are replaced by it; when an entry already holds all of it, that one is
// kept instead. Then the least recently used entries go until the cache is
// within its budget.
func (c *promptCache) add(kv *kvCache, imageTok int64) error {
	if c == nil || kv == nil || kv.st == nil || kv.st.Len() == 0 {
		return nil
	}
	h := kv.held
	h.ids = h.ids[:kv.st.Len()]
	c.mu.Lock()
	for i, e := range c.entries {
		if common(e.held, h, imageTok) == len(h.ids) {
			c.touch(i)
			c.mu.Unlock()
			return nil
		}
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil
	}
	snap, err := kv.st.Snapshot(len(h.ids))
	if err != nil {
		return err
	}
	size := snap.Bytes()
	if size > c.budget {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	keep := c.entries[:0]
	for _, e := range c.entries {
		if common(e.held, h, imageTok) == len(e.ids) {
			c.used -= e.snap.Bytes()
			continue
		}
		keep = append(keep, e)
	}
	clear(c.entries[len(keep):])
	c.entries = append(keep, &prefixEntry{held: h, snap: snap})
	c.used += size
	for c.used > c.budget {
		c.used -= c.entries[0].snap.Bytes()
		c.entries[0] = nil
		c.entries = c.entries[1:]
	}
	return nil
}

// stats returns the entries and the bytes they take.
func (c *promptCache) stats() (entries int, bytes int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.used
}

// close drops the entries; later adds keep nothing.
func (c *promptCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	clear(c.entries)
	c.entries, c.used = nil, 0
}
