package constrain

import (
	"bytes"
	"fmt"
	"slices"
)

// Vocab is a tokenizer's vocabulary seen as byte strings, with the end
// tokens, and a trie over the byte strings that every constraint walks. It
// is built once per model and read-only afterwards.
type Vocab struct {
	size     int      // number of token ids
	tokens   [][]byte // bytes of each id; nil = never allowed
	end      []int64  // end-of-sequence ids, allowed only where complete
	isEnd    []bool
	trie     trie
	dups     map[int32][]int64 // further ids whose bytes end at a trie node
	maxDepth int
}

// trie holds the vocabulary's byte strings in preorder: node i is entered
// by byte[i] from its parent at depth[i]-1, its subtree ends before skip[i],
// and tok[i] is the id whose bytes end there (-1 if none). Node 0 is the
// root.
type trie struct {
	byte  []byte
	depth []int32
	skip  []int32
	tok   []int64
}

// NewVocab builds a Vocab. tokens[id] is the byte string of id; a nil or
// empty one (special and added tokens, unused ids) is never allowed. end
// lists the end-of-sequence ids, which are allowed exactly where the output
// is complete.
func NewVocab(tokens [][]byte, end []int64) (*Vocab, error) {
	v := &Vocab{size: len(tokens), tokens: tokens, end: slices.Clone(end), isEnd: make([]bool, len(tokens)), dups: map[int32][]int64{}}
	for _, id := range end {
		if id < 0 || int(id) >= len(tokens) {
			return nil, fmt.Errorf("constrain: end token %d outside the vocabulary of %d ids", id, len(tokens))
		}
		v.isEnd[id] = true
	}
	ids := make([]int64, 0, len(tokens))
	for id, b := range tokens {
		if len(b) > 0 && !v.isEnd[id] {
			ids = append(ids, int64(id))
		}
	}
	slices.SortFunc(ids, func(a, b int64) int { return bytes.Compare(tokens[a], tokens[b]) })
	t := &v.trie
	t.byte, t.depth, t.tok = append(t.byte, 0), append(t.depth, 0), append(t.tok, -1)
	var prev []byte
	path := []int32{0} // path[d] = node at depth d of the previous token
	for _, id := range ids {
		b := tokens[id]
		common := 0
		for common < len(b) && common < len(prev) && b[common] == prev[common] {
			common++
		}
		if common == len(b) && len(b) == len(prev) {
			node := path[len(b)]
			v.dups[node] = append(v.dups[node], id)
			continue
		}
		path = path[:common+1]
		for d := common; d < len(b); d++ {
			t.byte = append(t.byte, b[d])
			t.depth = append(t.depth, int32(d+1))
			t.tok = append(t.tok, -1)
			path = append(path, int32(len(t.byte)-1))
		}
		t.tok[len(t.tok)-1] = id
		v.maxDepth = max(v.maxDepth, len(b))
		prev = b
	}
	// skip[i]: the first node after i's subtree, i.e. the next node whose
	// depth is not greater than depth[i].
	t.skip = make([]int32, len(t.byte))
	var open []int32
	for i := range t.byte {
		for len(open) > 0 && t.depth[open[len(open)-1]] >= t.depth[i] {
			t.skip[open[len(open)-1]] = int32(i)
			open = open[:len(open)-1]
		}
		open = append(open, int32(i))
	}
	for _, i := range open {
		t.skip[i] = int32(len(t.byte))
	}
	return v, nil
}

// Size returns the number of token ids.
func (v *Vocab) Size() int { return v.size }

// TrieNodes returns the number of nodes of the vocabulary trie (for
// reports and benchmarks).
func (v *Vocab) TrieNodes() int { return len(v.trie.byte) }
