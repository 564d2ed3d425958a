package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode table: every byte maps to a
// printable rune so that byte-level tokens are valid, visible strings.
// It is a pure function of the byte, hence a package-level constant table.
var byteToRune, runeToByte = buildByteTables()

func buildByteTables() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	var assigned [256]bool
	for b := '!'; b <= '~'; b++ {
		b2r[b], assigned[b] = b, true
	}
	for b := '¡'; b <= '¬'; b++ {
		b2r[b], assigned[b] = b, true
	}
	for b := '®'; b <= 'ÿ'; b++ {
		b2r[b], assigned[b] = b, true
	}
	n := rune(0)
	for b := 0; b < 256; b++ {
		if !assigned[b] {
			b2r[b] = 256 + n
			n++
		}
	}
	r2b := make(map[rune]byte, 256)
	for b, r := range b2r {
		r2b[r] = byte(b)
	}
	return b2r, r2b
}

// byteLevelString maps raw bytes to their byte-level (GPT-2) representation.
func byteLevelString(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// gpt2Pattern is the pre-tokenization regex of GPT-2 that the ByteLevel
// pre-tokenizer uses. Go's regexp lacks the lookahead it needs, so
// gpt2Split implements it by hand.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

type runeClass uint8

const (
	classOther runeClass = iota
	classLetter
	classNumber
	classSpace
)

// asciiClass caches the class of ASCII bytes, the common case.
var asciiClass = func() [128]runeClass {
	var t [128]runeClass
	for i := range t {
		t[i] = classifySlow(rune(i))
	}
	return t
}()

func classifySlow(r rune) runeClass {
	switch {
	// Oniguruma's \p{L} and \p{N} follow Unicode 16.0, not Go's 15.0.
	case unicode.Is(letter16, r):
		return classLetter
	case unicode.Is(number16, r):
		return classNumber
	case unicode.IsSpace(r):
		// unicode.IsSpace is exactly the Unicode White_Space property, which
		// is what Oniguruma's \s means in UTF-8 mode.
		return classSpace
	}
	return classOther
}

// classAt returns the class of the rune at s[i] and its width.
func classAt(s string, i int) (runeClass, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return classifySlow(r), w
}

// gpt2Match returns the end of the GPT-2 pattern match that starts at s[i]
// (i < len(s)); the alternatives are tried in the pattern's order, as a
// backtracking engine does.
func gpt2Match(s string, i int) int {
	n := len(s)
	// 's 't 're 've 'm 'll 'd (case-sensitive).
	if s[i] == '\'' && i+1 < n {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < n && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < n && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	// " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional ASCII space
	// then a run of one class.
	j := i
	if s[i] == ' ' && i+1 < n {
		j = i + 1
	}
	for k := 0; k < 2; k++ {
		c, w := classAt(s, j)
		if c != classSpace {
			end := j + w
			for end < n {
				c2, w2 := classAt(s, end)
				if c2 != c {
					break
				}
				end += w2
			}
			return end
		}
		if j == i {
			break
		}
		j = i // the optional space could not start a run; retry without it
	}
	// \s+(?!\S) then \s+: s[i] is whitespace here.
	end, last := i, i
	for end < n {
		c, w := classAt(s, end)
		if c != classSpace {
			break
		}
		last = end
		end += w
	}
	if end == n || last == i {
		return end
	}
	// Leave the last whitespace rune to prefix the following word.
	return last
}

// gpt2Split appends the GPT-2 pre-tokens of s to dst.
func gpt2Split(dst []string, s string) []string {
	for i := 0; i < len(s); {
		end := gpt2Match(s, i)
		dst = append(dst, s[i:end])
		i = end
	}
	return dst
}
