package constrain

import (
	"errors"
	"fmt"
)

// byteSet is a set of bytes, one bit each.
type byteSet [4]uint64

func (s *byteSet) add(lo, hi byte) {
	for b := int(lo); b <= int(hi); b++ {
		s[b>>6] |= 1 << (b & 63)
	}
}

func (s *byteSet) has(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }

func rangeSet(lo, hi byte) byteSet {
	var s byteSet
	s.add(lo, hi)
	return s
}

// setOf is the set of the bytes of chars.
func setOf(chars string) byteSet {
	var s byteSet
	for i := 0; i < len(chars); i++ {
		s.add(chars[i], chars[i])
	}
	return s
}

// An expr is a piece of grammar over bytes, compiled into a program.
type expr interface{ isExpr() }

type (
	eEmpty struct{}
	eLit   string  // these bytes in order
	eSet   byteSet // one byte of the set
	eSeq   []expr
	eAlt   []expr
	eRep   struct {
		x        expr
		min, max int // max < 0: unbounded
	}
	eCall int // rule number
)

func (eEmpty) isExpr() {}
func (eLit) isExpr()   {}
func (eSet) isExpr()   {}
func (eSeq) isExpr()   {}
func (eAlt) isExpr()   {}
func (eRep) isExpr()   {}
func (eCall) isExpr()  {}

func seq(xs ...expr) expr { return eSeq(xs) }
func alt(xs ...expr) expr { return eAlt(xs) }
func opt(x expr) expr     { return eRep{x, 0, 1} }
func rep(x expr, lo, hi int) expr {
	return eRep{x, lo, hi}
}

// Program node kinds.
const (
	opByte  uint8 = iota // consume one byte of sets[a], then go to next
	opSplit              // go to a and to b
	opCall               // push next, go to the start of rule a
	opRet                // pop the return address
	opMatch              // the whole input is accepted here
)

type inst struct {
	op   uint8
	a, b int32 // opByte: a = set index; opSplit: a, b; opCall: a = rule
	next int32
}

// maxInsts bounds the size of a compiled program, so that a schema such as
// {"maxLength": 100000} is refused instead of exhausting memory.
const maxInsts = 1 << 20

// errTooLarge is returned for grammars over maxInsts instructions.
var errTooLarge = errors.New("the grammar is too large (bounded repetitions expand into more than a million instructions); use smaller bounds")

// program is a compiled grammar: a Thompson-style automaton over bytes with
// calls, so that recursive schemas ($ref) stay finite.
type program struct {
	insts []inst
	sets  []byteSet
	setID map[byteSet]int32
	rules []int32 // start instruction of each rule
	start int32
}

// builder collects rules and compiles them into a program.
type builder struct {
	p     *program
	rules []expr // body of each rule; nil until defined
	names []string
	err   error
}

func newBuilder() *builder {
	return &builder{p: &program{setID: map[byteSet]int32{}}}
}

// rule reserves a rule (for recursion) and returns its number; define sets
// its body.
func (b *builder) rule(name string) int {
	b.rules = append(b.rules, nil)
	b.names = append(b.names, name)
	return len(b.rules) - 1
}

func (b *builder) define(r int, body expr) { b.rules[r] = body }

func (b *builder) emit(in inst) int32 {
	if len(b.p.insts) >= maxInsts {
		b.err = errTooLarge
		// Keep going on a dummy instruction; the error is reported at the end.
		return 0
	}
	b.p.insts = append(b.p.insts, in)
	return int32(len(b.p.insts) - 1)
}

func (b *builder) set(s byteSet) int32 {
	if id, ok := b.p.setID[s]; ok {
		return id
	}
	b.p.sets = append(b.p.sets, s)
	id := int32(len(b.p.sets) - 1)
	b.p.setID[s] = id
	return id
}

// compile emits x so that it continues at next, and returns its entry.
func (b *builder) compile(x expr, next int32) int32 {
	if b.err != nil {
		return 0
	}
	switch x := x.(type) {
	case eEmpty:
		return next
	case eLit:
		for i := len(x) - 1; i >= 0; i-- {
			next = b.emit(inst{op: opByte, a: b.set(rangeSet(x[i], x[i])), next: next})
		}
		return next
	case eSet:
		return b.emit(inst{op: opByte, a: b.set(byteSet(x)), next: next})
	case eSeq:
		for i := len(x) - 1; i >= 0; i-- {
			next = b.compile(x[i], next)
		}
		return next
	case eAlt:
		if len(x) == 0 {
			b.err = errors.New("internal: empty alternation")
			return next
		}
		entry := b.compile(x[len(x)-1], next)
		for i := len(x) - 2; i >= 0; i-- {
			e := b.compile(x[i], next)
			entry = b.emit(inst{op: opSplit, a: e, b: entry})
		}
		return entry
	case eRep:
		out := next
		if x.max < 0 {
			// x* loops through a split whose body returns to it.
			loop := b.emit(inst{op: opSplit})
			body := b.compile(x.x, loop)
			b.p.insts[loop].a, b.p.insts[loop].b = body, next
			out = loop
		} else {
			for i := x.min; i < x.max; i++ {
				e := b.compile(x.x, out)
				out = b.emit(inst{op: opSplit, a: e, b: next})
			}
		}
		for i := 0; i < x.min; i++ {
			out = b.compile(x.x, out)
		}
		return out
	case eCall:
		return b.emit(inst{op: opCall, a: int32(x), next: next})
	}
	b.err = fmt.Errorf("internal: unknown expression %T", x)
	return next
}

// finish compiles the rules and root into a program.
func (b *builder) finish(root expr) (*program, error) {
	match := b.emit(inst{op: opMatch})
	b.p.start = b.compile(root, match)
	b.p.rules = make([]int32, len(b.rules))
	for r, body := range b.rules {
		if body == nil {
			return nil, fmt.Errorf("internal: rule %s has no body", b.names[r])
		}
		ret := b.emit(inst{op: opRet})
		b.p.rules[r] = b.compile(body, ret)
	}
	if b.err != nil {
		return nil, b.err
	}
	if err := b.p.checkProductive(b.names); err != nil {
		return nil, err
	}
	return b.p, nil
}

// checkProductive refuses grammars in which a rule can never finish (for
// instance a schema that requires itself through $ref): generation would
// then run on until the token limit.
func (p *program) checkProductive(names []string) error {
	// can[pc]: from pc the end (Ret or Match) is reachable.
	n := len(p.insts)
	can := make([]bool, n)
	ruleDone := make([]bool, len(p.rules))
	for changed := true; changed; {
		changed = false
		for pc := n - 1; pc >= 0; pc-- {
			if can[pc] {
				continue
			}
			in := p.insts[pc]
			ok := false
			switch in.op {
			case opRet, opMatch:
				ok = true
			case opByte:
				ok = can[in.next]
			case opSplit:
				ok = can[in.a] || can[in.b]
			case opCall:
				ok = ruleDone[in.a] && can[in.next]
			}
			if ok {
				can[pc] = true
				changed = true
			}
		}
		for r, s := range p.rules {
			if !ruleDone[r] && can[s] {
				ruleDone[r] = true
				changed = true
			}
		}
	}
	for r, done := range ruleDone {
		if !done {
			return fmt.Errorf("%s can never be completed (it requires itself without a way out)", names[r])
		}
	}
	if !can[p.start] {
		return errors.New("the grammar has no complete output")
	}
	return nil
}

// maxBytes returns the length of the longest output of the program, or
// false if outputs are unbounded (a loop or a recursion).
func (p *program) maxBytes() (int, bool) {
	const (
		unseen = -1
		busy   = -2
	)
	memo := make([]int, len(p.insts))
	ruleMemo := make([]int, len(p.rules))
	for i := range memo {
		memo[i] = unseen
	}
	for i := range ruleMemo {
		ruleMemo[i] = unseen
	}
	var longest func(pc int32) (int, bool)
	longest = func(pc int32) (int, bool) {
		switch memo[pc] {
		case busy:
			return 0, false
		case unseen:
		default:
			return memo[pc], true
		}
		memo[pc] = busy
		in := p.insts[pc]
		var v int
		ok := true
		switch in.op {
		case opRet, opMatch:
		case opByte:
			v, ok = longest(in.next)
			v++
		case opSplit:
			x, ok1 := longest(in.a)
			y, ok2 := longest(in.b)
			v, ok = max(x, y), ok1 && ok2
		case opCall:
			if ruleMemo[in.a] == busy {
				return 0, false
			}
			if ruleMemo[in.a] == unseen {
				ruleMemo[in.a] = busy
				r, ok1 := longest(p.rules[in.a])
				if !ok1 {
					return 0, false
				}
				ruleMemo[in.a] = r
			}
			rest, ok1 := longest(in.next)
			v, ok = ruleMemo[in.a]+rest, ok1
		}
		if !ok {
			return 0, false
		}
		memo[pc] = v
		return v, true
	}
	return longest(p.start)
}
