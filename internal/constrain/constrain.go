// Package constrain restricts generation to a formal language — any JSON
// object or value, a JSON Schema, or a regular expression — by masking, at
// every decoding step, the tokens whose bytes would leave the output
// unable to become valid, and allowing the end tokens only where the output
// is complete.
//
// A language is compiled into a byte-level automaton with calls (so that
// recursive schemas stay finite), determinised lazily: each set of
// automaton positions reached by some output becomes a state with cached
// byte transitions and a cached token mask. A mask is computed by walking a
// trie of the vocabulary's byte strings (built once per Vocab) from the
// current state, so prefixes shared by many tokens are read once and a
// dead byte prunes its whole subtree.
//
// The package sees the vocabulary only as byte strings; it knows nothing of
// models or tokenizers.
//
// Whitespace between JSON tokens is bounded as in llama.cpp's JSON Schema
// grammars (at most one space, or a newline and up to 20 spaces or tabs),
// and numbers have at most 16 integer and 16 fraction digits and a 2-digit
// exponent, so that a model cannot loop forever on layout or digits. \u
// escapes in strings exclude surrogates (write such characters as UTF-8).
package constrain

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	mathbits "math/bits"
	"sync"
)

// Kind is the sort of language a Spec describes.
type Kind int

// Kinds of Spec.
const (
	JSONObject Kind = iota + 1 // any JSON object (OpenAI's "json_object")
	JSONValue                  // any JSON value
	Schema                     // Source is a JSON Schema
	Regex                      // Source is a regular expression the whole output matches
)

func (k Kind) String() string {
	switch k {
	case JSONObject:
		return "json object"
	case JSONValue:
		return "json value"
	case Schema:
		return "json schema"
	case Regex:
		return "regex"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Spec describes a language.
type Spec struct {
	Kind   Kind
	Source string // the schema (JSON) or the regular expression
}

// compileProgram turns a Spec into its program.
func compileProgram(s Spec) (*program, error) {
	switch s.Kind {
	case JSONObject, JSONValue:
		return jsonProgram(s.Kind == JSONObject)
	case Schema:
		return schemaProgram([]byte(s.Source))
	case Regex:
		return regexProgram(s.Source)
	}
	return nil, fmt.Errorf("constrain: unknown kind %d", int(s.Kind))
}

// maxStates and maxMasks bound the lazily built automaton of one
// Constraint (about 8 MB of transitions and 6 MB of masks with SmolVLM's
// 49k tokens); past them, the states are dropped and rebuilt as needed.
const (
	maxStates = 1 << 13
	maxMasks  = 1 << 10
)

// Constraint is a compiled language over a Vocab. It is safe for concurrent
// use: Matchers of many generations may share one.
type Constraint struct {
	spec  Spec
	vocab *Vocab
	prog  *program

	mu  sync.Mutex
	d   *dfa
	gen int // incremented when d is reset

	maxStates, maxMasks int // limits of d (tests lower them)
}

// Compile compiles s for v.
func Compile(s Spec, v *Vocab) (*Constraint, error) {
	p, err := compileProgram(s)
	if err != nil {
		return nil, err
	}
	return &Constraint{spec: s, vocab: v, prog: p, d: newDFA(p), maxStates: maxStates, maxMasks: maxMasks}, nil
}

// MaxBytes returns the length in bytes of the longest output the language
// allows, or false if outputs can be arbitrarily long.
func (c *Constraint) MaxBytes() (int, bool) { return c.prog.maxBytes() }

// Spec returns what c was compiled from.
func (c *Constraint) Spec() Spec { return c.spec }

// Matcher follows one generation through c.
func (c *Constraint) Matcher() *Matcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &Matcher{c: c, gen: c.gen, st: 0}
}

// Matcher tracks the output of one generation. It is not safe for
// concurrent use.
type Matcher struct {
	c    *Constraint
	gen  int
	st   int32  // current state of c.d, valid while gen == c.gen
	out  []byte // output so far, to find the state again after a reset
	done bool   // an end token was accepted

	saved []float32 // end tokens' logits during Mask
}

// sync re-finds m's state after the automaton was reset. c.mu is held.
func (m *Matcher) sync() {
	c := m.c
	if len(c.d.states) > c.maxStates || c.d.masks > c.maxMasks {
		c.d.reset()
		c.gen++
	}
	if m.gen == c.gen {
		return
	}
	st := int32(0)
	for _, b := range m.out {
		if st = c.d.step(st, b); st == dead {
			break
		}
	}
	m.st, m.gen = st, c.gen
}

// Mask sets the logits of the tokens that may not come next to -Inf: every
// token whose bytes would make the output impossible to complete, special
// and added tokens, ids beyond the vocabulary, and the end tokens unless
// the output is complete. It reports whether any token is left.
func (m *Matcher) Mask(logits []float32) bool {
	c := m.c
	v := c.vocab
	c.mu.Lock()
	m.sync()
	var mask []uint64
	accept := false
	if m.st != dead && !m.done {
		mask = c.d.mask(m.st, v)
		accept = c.d.states[m.st].accept
	}
	c.mu.Unlock()

	ninf := float32(math.Inf(-1))
	m.saved = m.saved[:0]
	for _, id := range v.end {
		if int(id) < len(logits) {
			m.saved = append(m.saved, logits[id])
		}
	}
	any := false
	n := min(len(logits), v.size)
	for w := 0; w*64 < n; w++ {
		var bits uint64
		if mask != nil {
			bits = mask[w]
		}
		base := w * 64
		row := logits[base:min(n, base+64)]
		switch {
		case bits == 0:
			for i := range row {
				row[i] = ninf
			}
		default:
			any = true
			for off := ^bits; off != 0; off &= off - 1 {
				if j := mathbits.TrailingZeros64(off); j < len(row) {
					row[j] = ninf
				}
			}
		}
	}
	for i := n; i < len(logits); i++ {
		logits[i] = ninf
	}
	// End ids are not in the trie, so the loop cleared them; they come
	// back where the output is complete.
	if accept {
		k := 0
		for _, id := range v.end {
			if int(id) < len(logits) {
				logits[id] = m.saved[k]
				k++
				any = true
			}
		}
	}
	return any
}

// Allowed reports whether id may come next.
func (m *Matcher) Allowed(id int64) bool {
	c := m.c
	v := c.vocab
	if id < 0 || int(id) >= v.size || m.done {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m.sync()
	if m.st == dead {
		return false
	}
	if v.isEnd[id] {
		return c.d.states[m.st].accept
	}
	st := m.st
	for _, b := range v.tokens[id] {
		if st = c.d.step(st, b); st == dead {
			return false
		}
	}
	return len(v.tokens[id]) > 0
}

// Accept moves past id, which must be allowed (an error says why not).
func (m *Matcher) Accept(id int64) error {
	c := m.c
	v := c.vocab
	if m.done {
		return errors.New("constrain: token after the end token")
	}
	if id < 0 || int(id) >= v.size {
		return fmt.Errorf("constrain: token %d outside the vocabulary of %d ids", id, v.size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m.sync()
	if m.st == dead {
		return errors.New("constrain: the output is already invalid")
	}
	if v.isEnd[id] {
		if !c.d.states[m.st].accept {
			return fmt.Errorf("constrain: end token %d before the output is complete", id)
		}
		m.done = true
		return nil
	}
	b := v.tokens[id]
	if len(b) == 0 {
		return fmt.Errorf("constrain: token %d (special or added) is never allowed", id)
	}
	st := m.st
	for i := range b {
		if st = c.d.step(st, b[i]); st == dead {
			return fmt.Errorf("constrain: token %d (%q) makes the output invalid at byte %d", id, b, i)
		}
	}
	m.st = st
	m.out = append(m.out, b...)
	return nil
}

// Complete reports whether the output so far is a complete sentence of the
// language.
func (m *Matcher) Complete() bool {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	m.sync()
	return m.st != dead && c.d.states[m.st].accept
}

// Done reports whether the output is complete and nothing but an end
// token may follow, so generation can stop without sampling one.
func (m *Matcher) Done() bool {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	m.sync()
	return m.done || m.st != dead && c.d.states[m.st].final
}

// Matches reports whether text is a complete sentence of the language.
func (c *Constraint) Matches(text []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := int32(0)
	for _, b := range text {
		if st = c.d.step(st, b); st == dead {
			return false
		}
	}
	return c.d.states[st].accept
}

// Output returns the bytes accepted so far.
func (m *Matcher) Output() []byte { return m.out }

// Cache keeps compiled Constraints for one Vocab, keyed by a hash of their
// Spec, so that a schema used again costs nothing to compile and keeps its
// warm automaton. It holds at most size entries, dropping the least
// recently used. It is safe for concurrent use.
type Cache struct {
	vocab *Vocab
	size  int

	mu      sync.Mutex
	entries map[[32]byte]*cacheEntry
	tick    uint64
}

type cacheEntry struct {
	c    *Constraint
	used uint64
}

// NewCache returns a cache of at most size Constraints over v.
func NewCache(v *Vocab, size int) *Cache {
	return &Cache{vocab: v, size: max(size, 1), entries: map[[32]byte]*cacheEntry{}}
}

// Vocab returns the vocabulary the cache compiles for.
func (c *Cache) Vocab() *Vocab { return c.vocab }

// Get returns the Constraint of s, compiling it on first use.
func (c *Cache) Get(s Spec) (*Constraint, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", int(s.Kind))
	h.Write([]byte(s.Source))
	var key [32]byte
	h.Sum(key[:0])

	c.mu.Lock()
	c.tick++
	if e, ok := c.entries[key]; ok {
		e.used = c.tick
		c.mu.Unlock()
		return e.c, nil
	}
	c.mu.Unlock()

	con, err := Compile(s, c.vocab)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok { // compiled concurrently
		return e.c, nil
	}
	if len(c.entries) >= c.size {
		var oldest [32]byte
		first := true
		var when uint64
		for k, e := range c.entries {
			if first || e.used < when {
				oldest, when, first = k, e.used, false
			}
		}
		delete(c.entries, oldest)
	}
	c.entries[key] = &cacheEntry{c: con, used: c.tick}
	return con, nil
}
