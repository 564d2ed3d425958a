package constrain

import "unicode/utf8"

// maxIndent bounds the spaces or tabs after a newline between JSON tokens.
const maxIndent = 20

// Digit bounds of numbers (see the package doc).
const (
	maxIntDigits  = 16
	maxFracDigits = 16
	maxExpDigits  = 2
)

var (
	digit   = eSet(rangeSet('0', '9'))
	digit19 = eSet(rangeSet('1', '9'))
	hexSet  = func() byteSet {
		s := rangeSet('0', '9')
		s.add('a', 'f')
		s.add('A', 'F')
		return s
	}()
)

// ws is the whitespace allowed between JSON tokens: nothing, one space, or
// a newline and up to maxIndent spaces or tabs.
func ws() expr {
	return opt(alt(eLit(" "), seq(eLit("\n"), rep(eSet(setOf(" \t")), 0, maxIndent))))
}

// utf8Char is one valid UTF-8 encoded character from lo to hi (both
// inclusive; surrogates are skipped).
func utf8Char(lo, hi rune) expr {
	var alts []expr
	for _, r := range utf8Ranges(nil, lo, hi) {
		s := make(eSeq, len(r))
		for i, br := range r {
			s[i] = eSet(rangeSet(br[0], br[1]))
		}
		if len(s) == 1 {
			alts = append(alts, s[0])
		} else {
			alts = append(alts, s)
		}
	}
	switch len(alts) {
	case 0:
		return nil
	case 1:
		return alts[0]
	}
	return eAlt(alts)
}

// utf8Ranges appends the byte-range sequences that encode exactly the
// scalar values lo..hi in UTF-8 (the split used by RE2 and Rust's
// regex-syntax).
func utf8Ranges(dst [][][2]byte, lo, hi rune) [][][2]byte {
	if lo > hi {
		return dst
	}
	// Surrogates are not scalar values.
	if lo < 0xD800 && hi >= 0xD800 || lo <= 0xDFFF && hi > 0xDFFF {
		if lo < 0xD800 {
			dst = utf8Ranges(dst, lo, min(hi, 0xD7FF))
		}
		if hi > 0xDFFF {
			dst = utf8Ranges(dst, max(lo, 0xE000), hi)
		}
		return dst
	}
	if lo >= 0xD800 && hi <= 0xDFFF {
		return dst
	}
	// Split where the encoded length changes.
	for _, edge := range []rune{0x7F, 0x7FF, 0xFFFF} {
		if lo <= edge && hi > edge {
			dst = utf8Ranges(dst, lo, edge)
			return utf8Ranges(dst, edge+1, hi)
		}
	}
	if hi <= 0x7F {
		return append(dst, [][2]byte{{byte(lo), byte(hi)}})
	}
	// Split until every continuation byte spans a whole or a single range.
	for i := 1; i < 4; i++ {
		m := rune(1)<<(6*i) - 1
		if lo&^m != hi&^m {
			if lo&m != 0 {
				dst = utf8Ranges(dst, lo, lo|m)
				return utf8Ranges(dst, (lo|m)+1, hi)
			}
			if hi&m != m {
				dst = utf8Ranges(dst, lo, (hi&^m)-1)
				return utf8Ranges(dst, hi&^m, hi)
			}
		}
	}
	var a, b [4]byte
	n := utf8.EncodeRune(a[:], lo)
	utf8.EncodeRune(b[:], hi)
	seq := make([][2]byte, n)
	for i := range n {
		seq[i] = [2]byte{a[i], b[i]}
	}
	return append(dst, seq)
}

// hex4NoSurrogate is the four hex digits of a \u escape outside
// D800..DFFF.
func hex4NoSurrogate() expr {
	first := hexSet
	first[('d')>>6] &^= 1 << ('d' & 63)
	first[('D')>>6] &^= 1 << ('D' & 63)
	h := eSet(hexSet)
	return alt(
		seq(eSet(first), h, h, h),
		seq(eSet(setOf("dD")), eSet(rangeSet('0', '7')), h, h),
	)
}

// strChar is one character of a JSON string's contents: an unescaped
// character or an escape.
func strChar() expr {
	ascii := rangeSet(0x20, 0x7F)
	ascii[0] &^= 1 << '"'
	ascii[1] &^= 1 << ('\\' - 64)
	return alt(
		eSet(ascii),
		utf8Char(0x80, utf8.MaxRune),
		seq(eLit(`\`), alt(eSet(setOf(`"\/bfnrt`)), seq(eLit("u"), hex4NoSurrogate()))),
	)
}

// jsonString is any JSON string with lo..hi characters (hi < 0: no limit).
func jsonString(lo, hi int) expr {
	return seq(eLit(`"`), rep(strChar(), lo, hi), eLit(`"`))
}

// jsonNumber is a JSON number within the digit bounds.
func jsonNumber() expr {
	return seq(
		opt(eLit("-")),
		alt(eLit("0"), seq(digit19, rep(digit, 0, maxIntDigits-1))),
		opt(seq(eLit("."), rep(digit, 1, maxFracDigits))),
		opt(seq(eSet(setOf("eE")), opt(eSet(setOf("+-"))), rep(digit, 1, maxExpDigits))),
	)
}

// jsonInteger is an integer within the digit bounds, without "-0".
func jsonInteger() expr {
	return alt(eLit("0"), seq(opt(eLit("-")), digit19, rep(digit, 0, maxIntDigits-1)))
}

// jsonRules defines the rules of generic JSON on a builder.
type jsonRules struct {
	value, object, array, str int
}

func addJSONRules(b *builder) jsonRules {
	r := jsonRules{value: b.rule("value"), object: b.rule("object"), array: b.rule("array"), str: b.rule("string")}
	b.define(r.str, jsonString(0, -1))
	b.define(r.value, alt(eCall(r.object), eCall(r.array), eCall(r.str), jsonNumber(),
		eLit("true"), eLit("false"), eLit("null")))
	member := seq(eCall(r.str), ws(), eLit(":"), ws(), eCall(r.value))
	b.define(r.object, seq(eLit("{"), ws(), alt(
		eLit("}"),
		seq(member, rep(seq(ws(), eLit(","), ws(), member), 0, -1), ws(), eLit("}")),
	)))
	b.define(r.array, seq(eLit("["), ws(), alt(
		eLit("]"),
		seq(eCall(r.value), rep(seq(ws(), eLit(","), ws(), eCall(r.value)), 0, -1), ws(), eLit("]")),
	)))
	return r
}

// jsonProgram is any JSON object (object true) or value, after optional
// leading whitespace.
func jsonProgram(object bool) (*program, error) {
	b := newBuilder()
	r := addJSONRules(b)
	root := r.value
	if object {
		root = r.object
	}
	return b.finish(seq(ws(), eCall(root)))
}
