// Package bpetrain trains a small byte-level BPE tokenizer with SmolVLM's
// special tokens, for random-weight test models when the real SmolVLM
// tokenizer.json is not available.
//
// The result mirrors the layout of SmolVLM's tokenizer.json: the low special
// tokens occupy ids 0..16 of the base vocabulary, then come the 256
// byte-level tokens and the learned merges, and the high special tokens
// (<global-img>, <row_r_col_c>, <image>, …, <end_of_utterance>) are added
// tokens numbered after the base vocabulary.
package bpetrain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// LowSpecialTokens are the special tokens with ids 0..16, in id order
// (SmolLM's names; SmolVLM uses ids 0, 1 and 2).
func LowSpecialTokens() []string {
	return []string{
		"<|endoftext|>", "<|im_start|>", "<|im_end|>",
		"<repo_name>", "<reponame>", "<file_sep>", "<filename>", "<gh_stars>",
		"<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
		"<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>",
		"<empty_output>",
	}
}

// HighSpecialTokens are the special tokens numbered after the base
// vocabulary, in id order (spec §1.2): 128 tokens.
func HighSpecialTokens() []string {
	out := []string{"<global-img>"}
	for r := 1; r <= 6; r++ {
		for c := 1; c <= 6; c++ {
			out = append(out, fmt.Sprintf("<row_%d_col_%d>", r, c))
		}
	}
	out = append(out, "<fake_token_around_image>", "<image>")
	for i := 0; i < 88; i++ {
		out = append(out, fmt.Sprintf("<|reserved_special_token_%d|>", i))
	}
	return append(out, "<end_of_utterance>")
}

// MinVocabSize is the smallest base vocabulary Train accepts: the low
// special tokens and the 256 byte tokens.
const MinVocabSize = 17 + 256

// Train learns merges on corpus until the vocab has vocabSize entries (the
// 17 low special tokens and 256 byte tokens first) and returns a
// tokenizer.json in the Hugging Face format: BPE model,
// Digits(individual)+ByteLevel(add_prefix_space=false) pre-tokenizer,
// ByteLevel decoder, null normalizer and post-processor, and SmolVLM's
// special tokens as added tokens. The output depends only on the arguments.
// It fails if corpus is too small to learn that many merges.
func Train(corpus string, vocabSize int) ([]byte, error) {
	if vocabSize < MinVocabSize {
		return nil, fmt.Errorf("bpetrain: vocabSize %d is below the minimum %d (17 special + 256 byte tokens)", vocabSize, MinVocabSize)
	}
	low, high := LowSpecialTokens(), HighSpecialTokens()
	vocab := append([]string(nil), low...)
	for b := 0; b < 256; b++ {
		vocab = append(vocab, byteLevel([]byte{byte(b)}))
	}
	// The base tokenizer (no merges) pre-tokenizes the corpus exactly as
	// the final one will encode it.
	base, err := tokenizer.FromJSON(render(vocab, nil, low, high))
	if err != nil {
		return nil, fmt.Errorf("bpetrain: base tokenizer: %w", err)
	}
	words := countWords(base.PreTokenize(corpus), low, high)

	index := make(map[string]int, vocabSize)
	for id, tok := range vocab {
		index[tok] = id
	}
	var merges [][2]string
	for len(vocab) < vocabSize {
		a, b, ok := bestPair(words)
		if !ok {
			return nil, fmt.Errorf("bpetrain: corpus of %d bytes supports only %d vocab entries, %d requested", len(corpus), len(vocab), vocabSize)
		}
		sa, sb := vocab[a], vocab[b]
		merged := sa + sb
		id, exists := index[merged]
		if !exists {
			id = len(vocab)
			vocab = append(vocab, merged)
			index[merged] = id
		}
		merges = append(merges, [2]string{sa, sb})
		for i := range words {
			words[i].syms = applyMerge(words[i].syms, a, b, id)
		}
	}
	return render(vocab, merges, low, high), nil
}

type word struct {
	syms  []int
	count int
}

// countWords turns pre-tokens into byte-token sequences with their counts,
// sorted so that training does not depend on map order. Special tokens in
// the corpus are not trained on.
func countWords(pieces []string, low, high []string) []word {
	special := map[string]bool{}
	for _, s := range append(append([]string(nil), low...), high...) {
		special[s] = true
	}
	counts := map[string]int{}
	for _, p := range pieces {
		if !special[p] {
			counts[p]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, 0, len(keys))
	for _, k := range keys {
		syms := make([]int, len(k))
		for i := 0; i < len(k); i++ {
			syms[i] = len(low) + int(k[i])
		}
		words = append(words, word{syms, counts[k]})
	}
	return words
}

// bestPair returns the most frequent adjacent pair; ties go to the pair
// with the smallest ids, which makes training deterministic.
func bestPair(words []word) (int, int, bool) {
	counts := map[[2]int]int{}
	for _, w := range words {
		for i := 0; i+1 < len(w.syms); i++ {
			counts[[2]int{w.syms[i], w.syms[i+1]}] += w.count
		}
	}
	best, bestN := [2]int{}, 0
	for p, n := range counts {
		if n > bestN || (n == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
			best, bestN = p, n
		}
	}
	return best[0], best[1], bestN > 0
}

func applyMerge(syms []int, a, b, id int) []int {
	out := syms[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			out = append(out, id)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	return out
}

// byteLevel maps bytes to GPT-2's printable byte-level characters.
func byteLevel(b []byte) string {
	var buf []byte
	for _, c := range b {
		buf = utf8.AppendRune(buf, byteRune(c))
	}
	return string(buf)
}

// byteRune is GPT-2's bytes_to_unicode for one byte.
func byteRune(c byte) rune {
	switch {
	case c >= '!' && c <= '~', c >= 0xA1 && c <= 0xAC, c >= 0xAE:
		return rune(c)
	}
	// The other bytes take 256, 257, … in byte order.
	n := rune(0)
	for x := 0; x < int(c); x++ {
		b := byte(x)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			n++
		}
	}
	return 256 + n
}

// render writes the tokenizer.json, with the vocab in id order so the file
// reads like Hugging Face's.
func render(vocab []string, merges [][2]string, low, high []string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<image>" readable
	str := func(s string) {
		_ = enc.Encode(s)           // a string always encodes
		buf.Truncate(buf.Len() - 1) // drop Encode's newline
	}
	buf.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	addTok := func(id int, content string, first bool) {
		if !first {
			buf.WriteString(",")
		}
		fmt.Fprintf(&buf, "\n    {\"id\": %d, \"content\": ", id)
		str(content)
		buf.WriteString(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}")
	}
	for i, s := range low {
		addTok(i, s, i == 0)
	}
	for i, s := range high {
		addTok(len(vocab)+i, s, false)
	}
	buf.WriteString("\n  ],\n  \"normalizer\": null,\n")
	buf.WriteString(`  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},` + "\n")
	buf.WriteString("  \"post_processor\": null,\n")
	buf.WriteString(`  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},` + "\n")
	buf.WriteString(`  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,` + "\n")
	buf.WriteString("    \"vocab\": {")
	for id, tok := range vocab {
		if id > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n      ")
		str(tok)
		fmt.Fprintf(&buf, ": %d", id)
	}
	buf.WriteString("\n    },\n    \"merges\": [")
	for i, m := range merges {
		if i > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n      [")
		str(m[0])
		buf.WriteString(", ")
		str(m[1])
		buf.WriteString("]")
	}
	buf.WriteString("\n    ]\n  }\n}\n")
	return buf.Bytes()
}
