package constrain

import (
	"fmt"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// charContext says how a regular expression's characters are written.
type charContext int

const (
	rawChars  charContext = iota // as UTF-8 (--regex)
	jsonChars                    // inside a JSON string, escaped where JSON requires
)

// parseRegex parses a regular expression in the subset supported: what
// Go's regexp/syntax (RE2, Perl flags) parses, without word boundaries, and
// with ^ and $ only at the start and end. Matching is of the whole text:
// a pattern without anchors is generated as if it had them, which is a
// subset of what an unanchored JSON Schema pattern accepts.
func parseRegex(pattern string) (*syntax.Regexp, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", pattern, err)
	}
	return stripAnchors(re), nil
}

func isBegin(re *syntax.Regexp) bool {
	return re.Op == syntax.OpBeginText || re.Op == syntax.OpBeginLine
}

func isEnd(re *syntax.Regexp) bool {
	return re.Op == syntax.OpEndText || re.Op == syntax.OpEndLine
}

// stripAnchors removes leading ^ and trailing $ of the whole expression.
func stripAnchors(re *syntax.Regexp) *syntax.Regexp {
	if isBegin(re) || isEnd(re) {
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	}
	if re.Op != syntax.OpConcat {
		return re
	}
	subs := re.Sub
	for len(subs) > 0 && isBegin(subs[0]) {
		subs = subs[1:]
	}
	for len(subs) > 0 && isEnd(subs[len(subs)-1]) {
		subs = subs[:len(subs)-1]
	}
	c := *re
	c.Sub = subs
	return &c
}

// regexExpr compiles re for ctx.
func regexExpr(re *syntax.Regexp, ctx charContext) (expr, error) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return eEmpty{}, nil
	case syntax.OpNoMatch:
		return nil, fmt.Errorf("regular expression %s matches nothing", re)
	case syntax.OpLiteral:
		s := make(eSeq, 0, len(re.Rune))
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				var class []rune
				for f := r; ; {
					class = append(class, f, f)
					if f = unicode.SimpleFold(f); f == r {
						break
					}
				}
				s = append(s, classExpr(class, ctx))
			} else {
				s = append(s, classExpr([]rune{r, r}, ctx))
			}
		}
		return s, nil
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return nil, fmt.Errorf("regular expression: empty character class")
		}
		if x := classExpr(re.Rune, ctx); x != nil {
			return x, nil
		}
		return nil, fmt.Errorf("regular expression: character class %s matches nothing", re)
	case syntax.OpAnyCharNotNL:
		return classExpr([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune}, ctx), nil
	case syntax.OpAnyChar:
		return classExpr([]rune{0, utf8.MaxRune}, ctx), nil
	case syntax.OpCapture:
		return regexExpr(re.Sub[0], ctx)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		x, err := regexExpr(re.Sub[0], ctx)
		if err != nil {
			return nil, err
		}
		switch re.Op {
		case syntax.OpStar:
			return rep(x, 0, -1), nil
		case syntax.OpPlus:
			return rep(x, 1, -1), nil
		case syntax.OpQuest:
			return rep(x, 0, 1), nil
		}
		return rep(x, re.Min, re.Max), nil
	case syntax.OpConcat, syntax.OpAlternate:
		xs := make([]expr, len(re.Sub))
		for i, sub := range re.Sub {
			x, err := regexExpr(sub, ctx)
			if err != nil {
				return nil, err
			}
			xs[i] = x
		}
		if re.Op == syntax.OpConcat {
			return eSeq(xs), nil
		}
		return eAlt(xs), nil
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEndLine, syntax.OpEndText:
		return nil, fmt.Errorf("regular expression: anchor %s is only supported at the start or end", re)
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return nil, fmt.Errorf("regular expression: word boundaries (\\b, \\B) are not supported")
	}
	return nil, fmt.Errorf("regular expression: %s is not supported", re)
}

// classExpr is one character of the class given as inclusive rune pairs.
func classExpr(pairs []rune, ctx charContext) expr {
	var alts []expr
	add := func(x expr) {
		if x != nil {
			alts = append(alts, x)
		}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		lo, hi := pairs[i], pairs[i+1]
		if ctx == rawChars {
			add(utf8Char(lo, hi))
			continue
		}
		// In a JSON string, controls, '"' and '\' are written as escapes.
		for r := lo; r <= hi && r < 0x20; r++ {
			add(escapeExpr(r))
		}
		from := max(lo, 0x20)
		for _, special := range []rune{'"', '\\'} {
			if from <= special && special <= hi {
				add(utf8Char(from, special-1))
				add(escapeExpr(special))
				from = special + 1
			}
		}
		add(utf8Char(from, hi))
	}
	switch len(alts) {
	case 0:
		return nil
	case 1:
		return alts[0]
	}
	return eAlt(alts)
}

// escapeExpr is the JSON escape of r (a control character, '"' or '\').
func escapeExpr(r rune) expr {
	switch r {
	case '"':
		return eLit(`\"`)
	case '\\':
		return eLit(`\\`)
	case '\b':
		return alt(eLit(`\b`), eLit(`\u0008`))
	case '\f':
		return alt(eLit(`\f`), seq(eLit(`\u000`), eSet(setOf("cC"))))
	case '\n':
		return alt(eLit(`\n`), seq(eLit(`\u000`), eSet(setOf("aA"))))
	case '\r':
		return alt(eLit(`\r`), seq(eLit(`\u000`), eSet(setOf("dD"))))
	case '\t':
		return alt(eLit(`\t`), eLit(`\u0009`))
	}
	const hexdig = "0123456789abcdef"
	lo := hexdig[r&15]
	last := setOf(string(lo))
	if lo >= 'a' {
		last.add(lo-'a'+'A', lo-'a'+'A')
	}
	return seq(eLit(`\u00`+string(hexdig[r>>4])), eSet(last))
}

// regexProgram is the language of a regular expression over the whole
// output.
func regexProgram(pattern string) (*program, error) {
	re, err := parseRegex(pattern)
	if err != nil {
		return nil, err
	}
	x, err := regexExpr(re, rawChars)
	if err != nil {
		return nil, err
	}
	return newBuilder().finish(x)
}
