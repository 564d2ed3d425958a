package tokenizer

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// bpe is the byte-pair-encoding model of tokenizer.json ("type": "BPE").
type bpe struct {
	vocab  map[string]uint32
	vocabR []string // by id; hasID tells which ids exist
	hasID  []bool
	// merges maps a pair of ids (left<<32 | right) to its rank and result.
	merges map[uint64]merge

	unkID          int64 // -1 when there is no unk token
	fuseUnk        bool
	byteFallback   bool
	ignoreMerges   bool
	subwordPrefix  string
	endOfWordSufix string

	// byteID is the id of the byte-level token of each byte (-1 if absent),
	// the initial symbols of a word on the fast path.
	byteID [256]int64

	cache wordCache
}

type merge struct {
	rank  uint32
	newID uint32
}

func pairKey(a, b uint32) uint64 { return uint64(a)<<32 | uint64(b) }

// symbol is one node of the doubly linked list of a word being merged.
type symbol struct {
	id         uint32
	prev, next int32
	size       int32 // 0 once merged into its left neighbour
}

type mergeItem struct {
	rank  uint32
	pos   int32
	newID uint32
}

// mergeQueue is a binary min-heap by (rank, pos), the order in which
// tokenizers' Word::merge_all applies merges.
type mergeQueue []mergeItem

func (q mergeQueue) less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}

func (q *mergeQueue) push(it mergeItem) {
	*q = append(*q, it)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *mergeQueue) pop() mergeItem {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(l, m) {
			m = l
		}
		if r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// mergeWord applies the merges to the initial symbols ids and appends the
// resulting ids to dst.
func (m *bpe) mergeWord(dst []uint32, ids []uint32) []uint32 {
	if len(ids) < 2 {
		return append(dst, ids...)
	}
	syms := make([]symbol, len(ids))
	for i, id := range ids {
		syms[i] = symbol{id: id, prev: int32(i - 1), next: int32(i + 1), size: 1}
	}
	syms[len(syms)-1].next = -1
	q := make(mergeQueue, 0, len(ids))
	for i := 0; i+1 < len(ids); i++ {
		if mg, ok := m.merges[pairKey(ids[i], ids[i+1])]; ok {
			q.push(mergeItem{mg.rank, int32(i), mg.newID})
		}
	}
	for len(q) > 0 {
		top := q.pop()
		cur := &syms[top.pos]
		if cur.size == 0 || cur.next < 0 {
			continue
		}
		right := &syms[cur.next]
		// Skip entries made stale by earlier merges.
		if mg, ok := m.merges[pairKey(cur.id, right.id)]; !ok || mg.newID != top.newID {
			continue
		}
		cur.id = top.newID
		cur.size += right.size
		right.size = 0
		cur.next = right.next
		if cur.next >= 0 {
			syms[cur.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mg, ok := m.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				q.push(mergeItem{mg.rank, cur.prev, mg.newID})
			}
		}
		if cur.next >= 0 {
			if mg, ok := m.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				q.push(mergeItem{mg.rank, top.pos, mg.newID})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, syms[i].id)
	}
	return dst
}

// tokenize appends the ids of one pre-token to dst. When byteLevel is set,
// word is raw text still to be mapped to byte-level characters.
func (m *bpe) tokenize(dst []uint32, word string, byteLevel bool) []uint32 {
	if word == "" {
		return dst
	}
	if ids, ok := m.cache.get(word); ok {
		return append(dst, ids...)
	}
	start := len(dst)
	dst = m.tokenizeUncached(dst, word, byteLevel)
	m.cache.put(word, dst[start:])
	return dst
}

func (m *bpe) tokenizeUncached(dst []uint32, word string, byteLevel bool) []uint32 {
	var initial []uint32
	if byteLevel && m.subwordPrefix == "" && m.endOfWordSufix == "" && !m.ignoreMerges {
		// Fast path: one initial symbol per byte.
		initial = make([]uint32, 0, len(word))
		for i := 0; i < len(word); i++ {
			id := m.byteID[word[i]]
			if id < 0 {
				initial = nil
				break
			}
			initial = append(initial, uint32(id))
		}
		if initial != nil {
			return m.mergeWord(dst, initial)
		}
	}
	if byteLevel {
		word = byteLevelString(word)
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	return m.mergeWord(dst, m.initialSymbols(word))
}

// initialSymbols follows BPE::merge_word of Hugging Face tokenizers: one
// symbol per character (with the subword prefix and word suffix), falling
// back to <0xXX> byte tokens, then to the unk token, and dropping the
// character when there is neither.
func (m *bpe) initialSymbols(word string) []uint32 {
	ids := make([]uint32, 0, len(word))
	pendingUnk := false
	flushUnk := func() {
		if pendingUnk {
			ids = append(ids, uint32(m.unkID))
			pendingUnk = false
		}
	}
	for i := 0; i < len(word); {
		_, w := utf8.DecodeRuneInString(word[i:])
		s := word[i : i+w]
		if i > 0 && m.subwordPrefix != "" {
			s = m.subwordPrefix + s
		}
		if i+w == len(word) && m.endOfWordSufix != "" {
			s += m.endOfWordSufix
		}
		i += w
		if id, ok := m.vocab[s]; ok {
			flushUnk()
			ids = append(ids, id)
			continue
		}
		if m.byteFallback {
			fb := make([]uint32, 0, len(s))
			for j := 0; j < len(s); j++ {
				id, ok := m.vocab[fmt.Sprintf("<0x%02X>", s[j])]
				if !ok {
					fb = nil
					break
				}
				fb = append(fb, id)
			}
			if fb != nil {
				// tokenizers does not flush a pending unk here.
				ids = append(ids, fb...)
				continue
			}
		}
		if m.unkID >= 0 {
			if pendingUnk && !m.fuseUnk {
				flushUnk()
			}
			pendingUnk = true
		}
	}
	flushUnk()
	return ids
}

// wordCache memoizes the ids of frequent words. It is bounded: once full it
// stops accepting entries (as the tokenizers crate does), so memory stays
// fixed however much text is encoded.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]uint32
}

const (
	cacheCapacity = 10000
	cacheMaxWord  = 256
)

func (c *wordCache) get(w string) ([]uint32, bool) {
	if len(w) > cacheMaxWord {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []uint32) {
	if len(w) > cacheMaxWord {
		return
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string][]uint32)
	}
	if len(c.m) < cacheCapacity {
		c.m[w] = append([]uint32(nil), ids...)
	}
	c.mu.Unlock()
}
