package constrain

import (
	"encoding/binary"
	"slices"
)

// thread is one way of having read the input so far: the instruction that
// reads the next byte (or opMatch), and the stack of return addresses.
type thread struct{ pc, stack int32 }

// stackEntry is one frame of an interned stack; stack 0 is the empty stack.
type stackEntry struct {
	ret, parent int32
	depth       int32
}

// state is a set of threads: where the automaton may be after some input.
// States are interned, so equal sets share one id and one cache of
// transitions and token masks.
type state struct {
	threads []thread
	accept  bool     // a thread is at opMatch: the input is complete
	final   bool     // every thread is at opMatch: nothing may follow
	mask    []uint64 // allowed token ids, once computed
}

const (
	unknown int32 = -2 // transition not computed yet
	dead    int32 = -1 // no thread survives the byte
)

// maxStack bounds the nesting depth of calls, so that a grammar cannot grow
// a stack without reading input.
const maxStack = 4096

// dfa builds the deterministic automaton of a program lazily: states are
// created the first time a byte leads to them and their transitions are
// cached in a flat table. It is not safe for concurrent use; Constraint
// guards it with a mutex.
type dfa struct {
	p       *program
	stacks  []stackEntry
	stackID map[stackEntry]int32
	states  []state
	byKey   map[string]int32
	next    []int32 // next[s<<8|b]
	masks   int     // states whose mask is computed

	// scratch for closures
	seen map[thread]struct{}
	buf  []thread
	key  []byte
}

func newDFA(p *program) *dfa {
	d := &dfa{p: p}
	d.reset()
	return d
}

// reset drops every state (to bound memory); the start state is 0 again.
func (d *dfa) reset() {
	d.stacks = []stackEntry{{ret: -1, parent: -1}}
	d.stackID = map[stackEntry]int32{}
	d.states = d.states[:0]
	d.byKey = map[string]int32{}
	d.next = d.next[:0]
	d.masks = 0
	d.seen = map[thread]struct{}{}
	d.buf = d.buf[:0]
	d.closure(d.p.start, 0)
	d.intern()
}

func (d *dfa) push(stack, ret int32) int32 {
	e := stackEntry{ret: ret, parent: stack, depth: d.stacks[stack].depth + 1}
	if id, ok := d.stackID[e]; ok {
		return id
	}
	d.stacks = append(d.stacks, e)
	id := int32(len(d.stacks) - 1)
	d.stackID[e] = id
	return id
}

// closure adds to d.buf the threads reached from pc without reading input.
func (d *dfa) closure(pc, stack int32) {
	for {
		t := thread{pc, stack}
		if _, ok := d.seen[t]; ok {
			return
		}
		d.seen[t] = struct{}{}
		in := &d.p.insts[pc]
		switch in.op {
		case opByte, opMatch:
			d.buf = append(d.buf, t)
			return
		case opSplit:
			d.closure(in.a, stack)
			pc = in.b
		case opCall:
			if d.p.insts[in.next].op != opRet { // a tail call needs no frame
				if d.stacks[stack].depth >= maxStack {
					return
				}
				stack = d.push(stack, in.next)
			}
			pc = d.p.rules[in.a]
		case opRet:
			if stack == 0 {
				return
			}
			e := d.stacks[stack]
			pc, stack = e.ret, e.parent
		}
	}
}

// intern turns d.buf into a state id, creating the state if it is new.
// An empty d.buf is the dead state.
func (d *dfa) intern() int32 {
	clear(d.seen)
	if len(d.buf) == 0 {
		return dead
	}
	slices.SortFunc(d.buf, func(a, b thread) int {
		if a.pc != b.pc {
			return int(a.pc - b.pc)
		}
		return int(a.stack - b.stack)
	})
	d.buf = slices.Compact(d.buf)
	d.key = d.key[:0]
	for _, t := range d.buf {
		d.key = binary.LittleEndian.AppendUint32(d.key, uint32(t.pc))
		d.key = binary.LittleEndian.AppendUint32(d.key, uint32(t.stack))
	}
	if id, ok := d.byKey[string(d.key)]; ok {
		d.buf = d.buf[:0]
		return id
	}
	st := state{threads: slices.Clone(d.buf), final: true}
	for _, t := range st.threads {
		if d.p.insts[t.pc].op == opMatch {
			st.accept = true
		} else {
			st.final = false
		}
	}
	d.buf = d.buf[:0]
	d.states = append(d.states, st)
	id := int32(len(d.states) - 1)
	d.byKey[string(d.key)] = id
	for range 256 {
		d.next = append(d.next, unknown)
	}
	return id
}

// step returns the state after reading b in state s, or dead.
func (d *dfa) step(s int32, b byte) int32 {
	if n := d.next[int(s)<<8|int(b)]; n != unknown {
		return n
	}
	for _, t := range d.states[s].threads {
		in := &d.p.insts[t.pc]
		if in.op == opByte && d.p.sets[in.a].has(b) {
			d.closure(in.next, t.stack)
		}
	}
	n := d.intern()
	d.next[int(s)<<8|int(b)] = n
	return n
}

// mask computes the token ids that may follow state s: those whose bytes
// all lead to live states. Shared prefixes of the vocabulary are walked
// once, in the trie's preorder, skipping the subtree of a dead byte.
func (d *dfa) mask(s int32, v *Vocab) []uint64 {
	if m := d.states[s].mask; m != nil {
		return m
	}
	m := make([]uint64, (v.size+63)/64)
	at := make([]int32, v.maxDepth+1)
	at[0] = s
	t := &v.trie
	for i := 1; i < len(t.byte); {
		depth := t.depth[i]
		from, b := at[depth-1], t.byte[i]
		n := d.next[int(from)<<8|int(b)] // step's cached case, inlined
		if n == unknown {
			n = d.step(from, b)
		}
		if n == dead {
			i = int(t.skip[i])
			continue
		}
		at[depth] = n
		if id := t.tok[i]; id >= 0 {
			m[id>>6] |= 1 << (id & 63)
			for _, dup := range v.dups[int32(i)] {
				m[dup>>6] |= 1 << (dup & 63)
			}
		}
		i++
	}
	d.states[s].mask = m
	d.masks++
	return m
}
