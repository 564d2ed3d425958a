package stop

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// step is one Push and what it must return.
type step struct {
	push    string
	emit    string
	stopped bool
}

func TestMatcher(t *testing.T) {
	tests := []struct {
		name  string
		stops []string
		steps []step
		flush string
		hit   string
	}{
		{"no stops passes through", nil,
			[]step{{"Hello", "Hello", false}, {" world", " world", false}, {"", "", false}}, "", ""},
		{"empty stop string ignored", []string{""},
			[]step{{"abc", "abc", false}}, "", ""},
		{"stop inside one push", []string{"<end>"},
			[]step{{"Hi<end>more", "Hi", true}}, "", "<end>"},
		{"stop across three pushes", []string{"<end>"},
			[]step{{"Hi <", "Hi ", false}, {"en", "", false}, {"d> more", "", true}}, "", "<end>"},
		{"partial prefix released", []string{"<end>"},
			[]step{{"a <", "a ", false}, {"en", "", false}, {"x", "<enx", false}}, "", ""},
		{"held prefix flushed at the end", []string{"<end>"},
			[]step{{"foo <en", "foo ", false}}, "<en", ""},
		{"stop at the very start", []string{"<end>"},
			[]step{{"<end>rest", "", true}}, "", "<end>"},
		{"stop at the start over pushes", []string{"<end>"},
			[]step{{"<", "", false}, {"end>", "", true}}, "", "<end>"},
		{"pushes after a stop", []string{"X"},
			[]step{{"aXb", "a", true}, {"more", "", true}}, "", "X"},
		{"earliest of several stops", []string{"STOP", "END"},
			[]step{{"xxENDyySTOP", "xx", true}}, "", "END"},
		{"second stop string", []string{"STOP", "END"},
			[]step{{"one ST", "one ", false}, {"OP", "", true}}, "", "STOP"},
		// "bc" is complete before "abcd" could be: the earlier start wins.
		{"overlapping stops", []string{"abcd", "bc"},
			[]step{{"xab", "x", false}, {"c", "a", true}}, "", "bc"},
		// The hold covers the longest possible prefix over all stops.
		{"longest hold over stops", []string{"ab", "xab"},
			[]step{{"zx", "z", false}, {"a", "", false}, {"c", "xac", false}}, "", ""},
		{"repeated prefix chars", []string{"aab"},
			[]step{{"aaa", "a", false}, {"b", "", true}}, "", "aab"},
		{"newline stop", []string{"\n\n"},
			[]step{{"line\n", "line", false}, {"\n", "", true}}, "", "\n\n"},
		// UTF-8: a piece ending inside a character is held until complete.
		{"split rune held", nil,
			[]step{{"caf\xc3", "caf", false}, {"\xa9!", "é!", false}}, "", ""},
		{"split 4-byte rune", nil,
			[]step{{"a\xf0\x9f", "a", false}, {"\x98", "", false}, {"\x80b", "😀b", false}}, "", ""},
		{"incomplete rune flushed", nil,
			[]step{{"a\xe2\x86", "a", false}}, "\xe2\x86", ""},
		{"invalid bytes pass", nil,
			[]step{{"a\xff", "a\xff", false}}, "", ""},
		{"multibyte stop", []string{"→"},
			[]step{{"a\xe2\x86", "a", false}, {"\x92b", "", true}}, "", "→"},
		{"multibyte stop prefix released", []string{"→x"},
			[]step{{"a→", "a", false}, {"y", "→y", false}}, "", ""},
		{"rune before stop prefix", []string{"ab"},
			[]step{{"éa", "é", false}, {"b", "", true}}, "", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMatcher(tt.stops)
			for i, s := range tt.steps {
				emit, stopped := m.Push(s.push)
				if emit != s.emit || stopped != s.stopped {
					t.Fatalf("Push #%d(%q) = (%q, %v), want (%q, %v)", i, s.push, emit, stopped, s.emit, s.stopped)
				}
			}
			if got := m.Flush(); got != tt.flush {
				t.Errorf("Flush() = %q, want %q", got, tt.flush)
			}
			if got := m.Hit(); got != tt.hit {
				t.Errorf("Hit() = %q, want %q", got, tt.hit)
			}
			if got := m.Stopped(); got != (tt.hit != "") {
				t.Errorf("Stopped() = %v, want %v", got, tt.hit != "")
			}
			if got := m.Flush(); got != "" {
				t.Errorf("second Flush() = %q, want empty", got)
			}
		})
	}
}

func TestZeroValue(t *testing.T) {
	var m Matcher
	if emit, stopped := m.Push("abc"); emit != "abc" || stopped {
		t.Errorf("zero Matcher Push = (%q, %v), want (\"abc\", false)", emit, stopped)
	}
}

// TestEverySplit streams texts in all two- and three-piece splits (and byte by
// byte) and checks the result against the definition: the emitted text plus
// the flush is the text up to the first occurrence of any stop string (all of
// it if none occurs), and no emitted piece splits a character.
func TestEverySplit(t *testing.T) {
	tests := []struct {
		text  string
		stops []string
	}{
		{"The answer is 42.<end_of_utterance>junk", []string{"<end_of_utterance>"}},
		{"naïve café → done<|im_end|>", []string{"<|im_end|>", "<end_of_utterance>"}},
		{"no stop here <end_of_utter", []string{"<end_of_utterance>"}},
		{"ééé→→😀 Stop", []string{"😀 S", "→😀x"}},
		{"aaaaab", []string{"aab", "aaab"}},
		{"<", []string{"<", "<<"}},
	}
	for _, tt := range tests {
		want := tt.text
		for _, s := range tt.stops {
			if i := strings.Index(tt.text, s); i >= 0 && i < len(want) {
				want = tt.text[:i]
			}
		}
		wantStop := want != tt.text
		check := func(pieces []string) {
			t.Helper()
			m := NewMatcher(tt.stops)
			var got strings.Builder
			stopped := false
			for _, p := range pieces {
				emit, st := m.Push(p)
				if !utf8.ValidString(emit) {
					t.Errorf("%q in pieces %q: emitted %q, not valid UTF-8", tt.text, pieces, emit)
				}
				got.WriteString(emit)
				stopped = st
			}
			got.WriteString(m.Flush())
			if got.String() != want || stopped != wantStop {
				t.Errorf("%q in pieces %q: got (%q, %v), want (%q, %v)", tt.text, pieces, got.String(), stopped, want, wantStop)
			}
		}
		var bytes []string
		for i := range len(tt.text) {
			bytes = append(bytes, tt.text[i:i+1])
		}
		check(bytes)
		for i := 0; i <= len(tt.text); i++ {
			for j := i; j <= len(tt.text); j++ {
				check([]string{tt.text[:i], tt.text[i:j], tt.text[j:]})
			}
		}
	}
}

func BenchmarkPush(b *testing.B) {
	m := NewMatcher([]string{"<end_of_utterance>", "<|im_end|>", "\n\nUser:"})
	pieces := []string{"The", " image", " shows", " a", " cat", " <", "end", " of", " it", ".\n"}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range pieces {
			m.Push(p)
		}
	}
}
