package constrain

import (
	"strconv"
	"strings"
)

// intRange is the grammar of the integers lo..hi (lo <= hi) written without
// leading zeros, "-0" or a "+" sign. The alternatives are disjoint, so the
// automaton stays small.
func intRange(lo, hi int64) expr {
	var alts []expr
	if lo < 0 {
		// -max(1,-hi) .. -lo, i.e. "-" then the magnitudes.
		alts = append(alts, seq(eLit("-"), natRange(max(1, -min(hi, -1)), -lo)))
	}
	if hi >= 0 {
		alts = append(alts, natRange(max(lo, 0), hi))
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return eAlt(alts)
}

// natRange is the decimal naturals a..b (0 <= a <= b).
func natRange(a, b int64) expr {
	var alts []expr
	for d := len(strconv.FormatInt(a, 10)); d <= len(strconv.FormatInt(b, 10)); d++ {
		lo, hi := int64(0), pow10(d)-1
		if d > 1 {
			lo = pow10(d - 1)
		}
		lo, hi = max(lo, a), min(hi, b)
		if lo > hi {
			continue
		}
		alts = append(alts, sameLength(strconv.FormatInt(lo, 10), strconv.FormatInt(hi, 10)))
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return eAlt(alts)
}

func pow10(d int) int64 {
	p := int64(1)
	for range d {
		p *= 10
	}
	return p
}

// sameLength is the digit strings from x to y, which have the same length.
func sameLength(x, y string) expr {
	if x == "" {
		return eEmpty{}
	}
	if x[0] == y[0] {
		return seq(eLit(x[:1]), sameLength(x[1:], y[1:]))
	}
	rest := len(x) - 1
	zeros, nines := strings.Repeat("0", rest), strings.Repeat("9", rest)
	if x[1:] == zeros && y[1:] == nines {
		return seq(eSet(rangeSet(x[0], y[0])), rep(digit, rest, rest))
	}
	alts := []expr{seq(eLit(x[:1]), sameLength(x[1:], nines))}
	if x[0]+1 <= y[0]-1 {
		alts = append(alts, seq(eSet(rangeSet(x[0]+1, y[0]-1)), rep(digit, rest, rest)))
	}
	alts = append(alts, seq(eLit(y[:1]), sameLength(zeros, y[1:])))
	return eAlt(alts)
}
