package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens, with the id
// Hugging Face assigns it on load.
type addedToken struct {
	content    string
	id         uint32
	special    bool
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
}

// matcher finds added tokens in text with Aho-Corasick's leftmost-longest
// semantics (the match kind Hugging Face uses): at the leftmost position where
// any token matches, the longest token wins; scanning resumes after it.
type matcher struct {
	// root maps the first byte to a node (0 = none), avoiding a search on
	// the hot path.
	root  [256]int32
	nodes []trieNode
	// contents[i] is token i's content and extendable[i] whether it is a
	// proper prefix of another token. A token that is not extendable and
	// matches at a position is the longest match there, which gives a fast
	// path for runs of the same token (<image> ×64 in every prompt tile).
	contents   []string
	extendable []bool
}

type trieNode struct {
	token int32 // index into the token list, -1 if no token ends here
	edges []trieEdge
}

type trieEdge struct {
	b    byte
	node int32
}

func newMatcher(tokens []*addedToken) *matcher {
	if len(tokens) == 0 {
		return nil
	}
	m := &matcher{
		nodes:      []trieNode{{token: -1}}, // node 0 is the unused root
		contents:   make([]string, len(tokens)),
		extendable: make([]bool, len(tokens)),
	}
	ends := make([]int32, len(tokens))
	for ti, t := range tokens {
		m.contents[ti] = t.content
		if t.content == "" {
			continue
		}
		first := t.content[0]
		cur := m.root[first]
		if cur == 0 {
			cur = m.newNode()
			m.root[first] = cur
		}
		for i := 1; i < len(t.content); i++ {
			cur = m.child(cur, t.content[i], true)
		}
		// On duplicate content the first token wins, like a pattern list.
		if m.nodes[cur].token < 0 {
			m.nodes[cur].token = int32(ti)
		}
		ends[ti] = cur
	}
	// A token is a prefix of another exactly when its trie node has children.
	for ti, n := range ends {
		m.extendable[ti] = n != 0 && len(m.nodes[n].edges) > 0
	}
	return m
}

func (m *matcher) newNode() int32 {
	m.nodes = append(m.nodes, trieNode{token: -1})
	return int32(len(m.nodes) - 1)
}

func (m *matcher) child(n int32, b byte, create bool) int32 {
	for _, e := range m.nodes[n].edges {
		if e.b == b {
			return e.node
		}
	}
	if !create {
		return 0
	}
	c := m.newNode()
	m.nodes[n].edges = append(m.nodes[n].edges, trieEdge{b, c})
	return c
}

// longestAt returns the token index and end of the longest token starting
// at s[i], or -1.
func (m *matcher) longestAt(s string, i int) (int32, int) {
	cur := m.root[s[i]]
	if cur == 0 {
		return -1, 0
	}
	best, bestEnd := m.nodes[cur].token, i+1
	for j := i + 1; j < len(s); j++ {
		cur = m.child(cur, s[j], false)
		if cur == 0 {
			break
		}
		if t := m.nodes[cur].token; t >= 0 {
			best, bestEnd = t, j+1
		}
	}
	return best, bestEnd
}

// segment is a piece of the input: either an added token (id >= 0) or text
// still to be pre-tokenized (id < 0), given as byte offsets into the text.
type segment struct {
	start, end int
	id         int64
}

// split appends the segments of s[start:end] to dst, following
// AddedVocabulary::find_matches of Hugging Face tokenizers, including its
// handling of single_word, lstrip and rstrip.
func (m *matcher) split(dst []segment, s string, tokens []*addedToken) []segment {
	if m == nil {
		return append(dst, segment{0, len(s), -1})
	}
	startOffset := 0
	last := int32(-1)
	for i := 0; i < len(s); {
		var ti int32
		var stop int
		if last >= 0 && !m.extendable[last] && strings.HasPrefix(s[i:], m.contents[last]) {
			ti, stop = last, i+len(m.contents[last])
		} else if ti, stop = m.longestAt(s, i); ti < 0 {
			i++
			continue
		}
		last = ti
		start := i
		// The next search starts at the end of the raw match, not at the
		// end after rstrip, exactly as the Aho-Corasick iterator does.
		i = stop
		t := tokens[ti]
		if t.singleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if t.lstrip {
			start = max(spaceLeftmostAtEnd(s[:start]), startOffset)
		}
		if t.rstrip {
			stop += spaceRightmostAtStart(s[stop:])
		}
		if start > startOffset {
			dst = append(dst, segment{startOffset, start, -1})
		}
		dst = append(dst, segment{start, stop, int64(t.id)})
		startOffset = stop
	}
	if startOffset != len(s) {
		dst = append(dst, segment{startOffset, len(s), -1})
	}
	return dst
}

// isWordRune is Rust regex's Unicode \w (Unicode 16.0): Alphabetic, marks,
// decimal digits, connector punctuation and Join_Control.
func isWordRune(r rune) bool { return unicode.Is(word16, r) }

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}

// spaceLeftmostAtEnd returns where the trailing whitespace of s begins.
func spaceLeftmostAtEnd(s string) int {
	i := len(s)
	for i > 0 {
		r, w := utf8.DecodeLastRuneInString(s[:i])
		if !unicode.IsSpace(r) {
			break
		}
		i -= w
	}
	return i
}

// spaceRightmostAtStart returns the length of the leading whitespace of s.
func spaceRightmostAtStart(s string) int {
	i := 0
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += w
	}
	return i
}
