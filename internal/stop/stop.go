// Package stop finds stop strings in streamed text.
//
// Generated text arrives in pieces (one decoded token at a time) and a stop
// string may span several pieces, so a Matcher holds back any tail that could
// still turn into a stop string and releases it once it cannot. It also never
// releases part of a UTF-8 encoded character: a piece that ends inside a
// multi-byte sequence (byte-level tokens can) is held until the rest arrives.
package stop

import (
	"strings"
	"unicode/utf8"
)

// Matcher watches a stream of text for a set of stop strings. The zero value
// has no stop strings and passes text through. A Matcher is not safe for
// concurrent use.
type Matcher struct {
	stops   []string
	pending string // received but not yet emitted
	hit     string // the stop string found, once stopped
	stopped bool
}

// NewMatcher returns a Matcher for stops. Empty strings are ignored (they
// would match before any text). Stop strings are expected to be valid UTF-8;
// the guarantee that emitted text never splits a character relies on it.
func NewMatcher(stops []string) *Matcher {
	m := &Matcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
		}
	}
	return m
}

// Push appends newly decoded text. It returns the text that is safe to emit
// now — text that can no longer be the start of a stop string — and whether a
// stop string was hit. On a hit, emit ends just before the earliest stop
// string and everything from it on is dropped; later calls return ("", true).
func (m *Matcher) Push(text string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	buf := m.pending + text
	// A stop string can only start in pending (held because it could) or in
	// text, so searching buf finds every occurrence.
	cut := -1
	for _, s := range m.stops {
		if i := strings.Index(buf, s); i >= 0 && (cut < 0 || i < cut) {
			cut, m.hit = i, s
		}
	}
	if cut >= 0 {
		m.stopped, m.pending = true, ""
		return buf[:cut], true
	}
	keep := m.holdFrom(buf)
	m.pending = buf[keep:]
	return buf[:keep], false
}

// holdFrom returns the index from which buf must be held back: the start of
// the longest suffix that is a proper prefix of a stop string, or of an
// incomplete UTF-8 sequence at the end, whichever is longer.
func (m *Matcher) holdFrom(buf string) int {
	from := len(buf)
	for _, s := range m.stops {
		// Longest k < len(s) with buf ending in s[:k]; a longer match than
		// the best so far is all that can move from.
		for k := min(len(s)-1, len(buf)); k > len(buf)-from; k-- {
			if strings.HasSuffix(buf, s[:k]) {
				from = len(buf) - k
				break
			}
		}
	}
	// A stop string starts with a whole character, so a suffix matching its
	// prefix starts on a character boundary; only a partial character at the
	// very end needs holding on its own.
	return min(from, incompleteTail(buf))
}

// incompleteTail returns the index of a trailing partial UTF-8 sequence (a
// lead byte followed by fewer continuation bytes than it announces), or
// len(buf) if the text ends on a complete character or on bytes that are
// invalid UTF-8 anyway (those are emitted as they are).
func incompleteTail(buf string) int {
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if !utf8.RuneStart(buf[i]) {
			continue
		}
		if !utf8.FullRuneInString(buf[i:]) {
			return i
		}
		return len(buf)
	}
	return len(buf)
}

// Flush returns the text still held back, for the end of the stream, and
// empties the Matcher. After a stop it returns "".
func (m *Matcher) Flush() string {
	out := m.pending
	m.pending = ""
	return out
}

// Stopped reports whether a stop string has been found.
func (m *Matcher) Stopped() bool { return m.stopped }

// Hit returns the stop string that was found, or "" if none was.
func (m *Matcher) Hit() string { return m.hit }
