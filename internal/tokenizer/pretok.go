package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// splitter is one pre-tokenization step: it appends the pieces of s to dst.
type splitter interface {
	split(dst []string, s string) []string
}

// span is a byte range of a string flagged as a match of a pattern.
type span struct {
	start, end int
	match      bool
}

// splitBehavior is tokenizers' SplitDelimiterBehavior.
type splitBehavior int

const (
	behRemoved splitBehavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

var behaviors = map[string]splitBehavior{
	"Removed":            behRemoved,
	"Isolated":           behIsolated,
	"MergedWithPrevious": behMergedWithPrevious,
	"MergedWithNext":     behMergedWithNext,
	"Contiguous":         behContiguous,
}

// applyBehavior follows NormalizedString::split: it turns the match spans
// (which cover s) into pieces and appends the non-empty ones to dst.
func applyBehavior(dst []string, s string, spans []span, beh splitBehavior) []string {
	type piece struct {
		start, end int
		remove     bool
	}
	var out []piece
	switch beh {
	case behIsolated:
		for _, sp := range spans {
			out = append(out, piece{sp.start, sp.end, false})
		}
	case behRemoved:
		for _, sp := range spans {
			out = append(out, piece{sp.start, sp.end, sp.match})
		}
	case behContiguous:
		prev := false
		for _, sp := range spans {
			if sp.match == prev && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, piece{sp.start, sp.end, false})
			}
			prev = sp.match
		}
	case behMergedWithPrevious:
		prev := false
		for _, sp := range spans {
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, piece{sp.start, sp.end, false})
			}
			prev = sp.match
		}
	case behMergedWithNext:
		prev := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, piece{sp.start, sp.end, false})
			}
			prev = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	for _, p := range out {
		if !p.remove && p.start != p.end {
			dst = append(dst, s[p.start:p.end])
		}
	}
	return dst
}

// isNumeric is Rust's char::is_numeric, which the Digits pre-tokenizer of
// Hugging Face tokenizers uses: General_Category N of Unicode 17.0.
func isNumeric(r rune) bool { return unicode.Is(numeric17, r) }

// digitsSplitter is the Digits pre-tokenizer.
type digitsSplitter struct{ individual bool }

func (d digitsSplitter) split(dst []string, s string) []string {
	// Fast path: no digit at all leaves s whole.
	has := false
	for _, r := range s {
		if isNumeric(r) {
			has = true
			break
		}
	}
	if !has {
		if s != "" {
			dst = append(dst, s)
		}
		return dst
	}
	// Every numeric rune is its own match (the char-predicate Pattern).
	var spans []span
	last := 0
	for i, r := range s {
		if isNumeric(r) {
			if last < i {
				spans = append(spans, span{last, i, false})
			}
			w := utf8.RuneLen(r)
			spans = append(spans, span{i, i + w, true})
			last = i + w
		}
	}
	if last < len(s) {
		spans = append(spans, span{last, len(s), false})
	}
	beh := behContiguous
	if d.individual {
		beh = behIsolated
	}
	return applyBehavior(dst, s, spans, beh)
}

// byteLevelSplitter is the splitting half of the ByteLevel pre-tokenizer;
// the byte-to-character mapping happens in the model (bpe.tokenize).
type byteLevelSplitter struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b byteLevelSplitter) split(dst []string, s string) []string {
	if b.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if !b.useRegex {
		if s != "" {
			dst = append(dst, s)
		}
		return dst
	}
	return gpt2Split(dst, s)
}

// patternSplitter is the Split pre-tokenizer.
type patternSplitter struct {
	find     func(s string) [][]int // match offsets, like regexp.FindAllStringIndex
	behavior splitBehavior
	invert   bool
}

func (p patternSplitter) split(dst []string, s string) []string {
	if s == "" {
		return dst
	}
	var spans []span
	prev := 0
	for _, m := range p.find(s) {
		if prev != m[0] {
			spans = append(spans, span{prev, m[0], false})
		}
		spans = append(spans, span{m[0], m[1], true})
		prev = m[1]
	}
	if prev != len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	if p.invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	return applyBehavior(dst, s, spans, p.behavior)
}

func gpt2FindAll(s string) [][]int {
	var out [][]int
	for i := 0; i < len(s); {
		end := gpt2Match(s, i)
		out = append(out, []int{i, end})
		i = end
	}
	return out
}

// perlClasses are the shorthand classes whose meaning differs between
// Oniguruma (Unicode) and Go's regexp (ASCII only).
var perlClasses = regexp.MustCompile(`\\[sSdDwWbB]`)

type preTokJSON struct {
	Type             string            `json:"type"`
	PreTokenizers    []json.RawMessage `json:"pretokenizers"`
	IndividualDigits bool              `json:"individual_digits"`
	AddPrefixSpace   bool              `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Pattern          struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
}

// parsePreTokenizer returns the splitters of a pre_tokenizer (flattening
// Sequence) and whether the pieces are byte-level (ByteLevel came last).
func parsePreTokenizer(raw json.RawMessage) ([]splitter, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	var steps []splitter
	byteLevel := false
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		var p preTokJSON
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("pre_tokenizer: %w", err)
		}
		if byteLevel {
			return fmt.Errorf("pre_tokenizer %q after ByteLevel is not supported", p.Type)
		}
		switch p.Type {
		case "Sequence":
			for _, sub := range p.PreTokenizers {
				if err := walk(sub); err != nil {
					return err
				}
			}
		case "Digits":
			steps = append(steps, digitsSplitter{p.IndividualDigits})
		case "ByteLevel":
			useRegex := p.UseRegex == nil || *p.UseRegex
			steps = append(steps, byteLevelSplitter{p.AddPrefixSpace, useRegex})
			byteLevel = true
		case "Split":
			beh, ok := behaviors[p.Behavior]
			if !ok {
				return fmt.Errorf("pre_tokenizer Split: behavior %q is not supported", p.Behavior)
			}
			var find func(string) [][]int
			switch {
			case p.Pattern.String != nil:
				if *p.Pattern.String == "" {
					return fmt.Errorf("pre_tokenizer Split: empty String pattern is not supported")
				}
				re := regexp.MustCompile(regexp.QuoteMeta(*p.Pattern.String))
				find = func(s string) [][]int { return re.FindAllStringIndex(s, -1) }
			case p.Pattern.Regex != nil && *p.Pattern.Regex == gpt2Pattern:
				find = gpt2FindAll
			case p.Pattern.Regex != nil:
				pat := *p.Pattern.Regex
				if perlClasses.MatchString(pat) {
					return fmt.Errorf("pre_tokenizer Split: regex %q uses \\s, \\d, \\w or \\b, whose Unicode meaning Go's regexp does not share; not supported", pat)
				}
				re, err := regexp.Compile(pat)
				if err != nil {
					return fmt.Errorf("pre_tokenizer Split: regex %q is not supported: %w", pat, err)
				}
				find = func(s string) [][]int { return re.FindAllStringIndex(s, -1) }
			default:
				return fmt.Errorf("pre_tokenizer Split: pattern needs Regex or String")
			}
			steps = append(steps, patternSplitter{find, beh, p.Invert})
		default:
			return fmt.Errorf("pre_tokenizer type %q is not supported", p.Type)
		}
		return nil
	}
	if err := walk(raw); err != nil {
		return nil, false, err
	}
	return steps, byteLevel, nil
}
