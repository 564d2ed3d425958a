// Package tokenizer is a Go port of the Hugging Face tokenizers library for
// byte-level BPE tokenizer.json files such as SmolVLM's: it encodes text to
// the same ids and decodes ids to the same text as the Rust implementation.
//
// Supported: model BPE (merges as "a b" strings or ["a","b"] pairs,
// ignore_merges, byte_fallback, unk_token, fuse_unk,
// continuing_subword_prefix, end_of_word_suffix; dropout must be null);
// added tokens with their special, single_word, lstrip, rstrip and
// normalized flags; normalizer null; pre-tokenizers Sequence, Digits,
// ByteLevel (last) and Split; decoder ByteLevel. Anything else makes Load
// fail with an error naming the component, never a silently different
// tokenization.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Tokenizer encodes and decodes text. It is read-only after loading (its
// word cache is internally synchronized), so one Tokenizer may be used by
// many goroutines at once.
type Tokenizer struct {
	model *bpe

	added      []*addedToken
	addedByStr map[string]*addedToken
	addedByID  map[uint32]*addedToken
	// nonNormalized and normalized split text on added tokens in two
	// passes, as AddedVocabulary::extract_and_normalize does.
	nonNormalized, normalized *matcher
	nonNormTokens, normTokens []*addedToken

	splitters []splitter
	byteLevel bool

	vocabSize int
}

// Load reads a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

type fileJSON struct {
	AddedTokens []struct {
		ID         uint32 `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized *bool  `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	Model         bpeJSON         `json:"-"`
}

// bpeJSON is the "model" object of a BPE tokenizer.json.
type bpeJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]uint32 `json:"-"`
	Merges                  [][2]string       `json:"-"`
}

// parseFile reads tokenizer.json: the model's vocab and merges with the fast
// scanner, everything else (small) with encoding/json.
func parseFile(data []byte) (*fileJSON, error) {
	s := &scanner{src: string(data)}
	small := map[string]json.RawMessage{}
	f := &fileJSON{}
	haveModel := false
	err := s.object(func(key string) error {
		if key == "model" {
			haveModel = true
			return parseModel(s, &f.Model)
		}
		raw, err := s.skip()
		small[key] = json.RawMessage(raw)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.peek() != 0 {
		return nil, s.errorf("data after the top-level object")
	}
	if !haveModel {
		return nil, fmt.Errorf("no model")
	}
	rest, err := json.Marshal(small)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(rest, f); err != nil {
		return nil, err
	}
	return f, nil
}

// parseModel reads the model object; vocab and merges go through the
// scanner, the other (small) fields through encoding/json.
func parseModel(s *scanner, m *bpeJSON) error {
	small := map[string]json.RawMessage{}
	err := s.object(func(key string) error {
		switch {
		case key == "vocab" && s.peek() == '{':
			m.Vocab = make(map[string]uint32, 1<<16)
			return s.object(func(tok string) error {
				id, err := s.uint32()
				m.Vocab[tok] = id
				return err
			})
		case key == "merges" && s.peek() == '[':
			// Files list the vocab first; it bounds the number of merges.
			m.Merges = make([][2]string, 0, len(m.Vocab))
			return s.array(func() error {
				a, b, err := parseMerge(s)
				if err != nil {
					return fmt.Errorf("merge %d: %w", len(m.Merges), err)
				}
				m.Merges = append(m.Merges, [2]string{a, b})
				return nil
			})
		}
		raw, err := s.skip()
		small[key] = json.RawMessage(raw)
		return err
	})
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	rest, err := json.Marshal(small)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if err := json.Unmarshal(rest, m); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

// parseMerge reads a merge written as "a b" or as ["a", "b"].
func parseMerge(s *scanner) (string, string, error) {
	if s.peek() == '"' {
		ab, err := s.str()
		if err != nil {
			return "", "", err
		}
		a, b, ok := strings.Cut(ab, " ")
		if !ok || strings.Contains(b, " ") {
			return "", "", fmt.Errorf("want \"a b\", got %q", ab)
		}
		return a, b, nil
	}
	// ["a", "b"], read without a callback: this runs ~50k times per Load.
	if err := s.expect('['); err != nil {
		return "", "", err
	}
	a, err := s.str()
	if err != nil {
		return "", "", err
	}
	if err := s.expect(','); err != nil {
		return "", "", fmt.Errorf("want a pair of tokens: %w", err)
	}
	b, err := s.str()
	if err != nil {
		return "", "", err
	}
	if err := s.expect(']'); err != nil {
		return "", "", fmt.Errorf("want a pair of tokens: %w", err)
	}
	return a, b, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// FromJSON parses the contents of a tokenizer.json file.
func FromJSON(data []byte) (*Tokenizer, error) {
	f, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if !isNull(f.Normalizer) {
		var n struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(f.Normalizer, &n)
		return nil, fmt.Errorf("tokenizer.json: normalizer type %q is not supported (only null)", n.Type)
	}
	if !isNull(f.PostProcessor) {
		// Encode never adds special tokens, so a post-processor is inert here;
		// ByteLevel's only effect is on offsets, which are not exposed.
		var p struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(f.PostProcessor, &p)
		if p.Type != "ByteLevel" {
			return nil, fmt.Errorf("tokenizer.json: post_processor type %q is not supported (only null or ByteLevel)", p.Type)
		}
	}
	if !isNull(f.Truncation) || !isNull(f.Padding) {
		return nil, fmt.Errorf("tokenizer.json: truncation and padding must be null")
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	steps, byteLevel, err := parsePreTokenizer(f.PreTokenizer)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	model, err := newBPE(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t := &Tokenizer{
		model:      model,
		splitters:  steps,
		byteLevel:  byteLevel,
		addedByStr: map[string]*addedToken{},
		addedByID:  map[uint32]*addedToken{},
	}
	t.addTokens(f)
	return t, nil
}

func newBPE(f *fileJSON) (*bpe, error) {
	mj := &f.Model
	if mj.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", mj.Type)
	}
	if mj.Dropout != nil {
		return nil, fmt.Errorf("model BPE: dropout %v is not supported (only null)", *mj.Dropout)
	}
	m := &bpe{
		vocab:        mj.Vocab,
		merges:       make(map[uint64]merge, len(mj.Merges)),
		unkID:        -1,
		fuseUnk:      mj.FuseUnk,
		byteFallback: mj.ByteFallback,
		ignoreMerges: mj.IgnoreMerges,
	}
	if m.vocab == nil {
		m.vocab = map[string]uint32{}
	}
	maxID := -1
	for _, id := range m.vocab {
		maxID = max(maxID, int(id))
	}
	// Ids index a slice; refuse absurdly sparse ones rather than allocate.
	if maxID >= 4*len(m.vocab)+1024 {
		return nil, fmt.Errorf("model BPE: vocab ids are sparse (max id %d for %d tokens)", maxID, len(m.vocab))
	}
	m.vocabR = make([]string, maxID+1)
	m.hasID = make([]bool, maxID+1)
	for tok, id := range m.vocab {
		m.vocabR[id], m.hasID[id] = tok, true
	}
	if mj.ContinuingSubwordPrefix != nil {
		m.subwordPrefix = *mj.ContinuingSubwordPrefix
	}
	if mj.EndOfWordSuffix != nil {
		m.endOfWordSufix = *mj.EndOfWordSuffix
	}
	if mj.UnkToken != nil {
		id, ok := m.vocab[*mj.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model BPE: unk_token %q is not in the vocab", *mj.UnkToken)
		}
		m.unkID = int64(id)
	}
	for b := 0; b < 256; b++ {
		m.byteID[b] = -1
		if id, ok := m.vocab[string(byteToRune[b])]; ok {
			m.byteID[b] = int64(id)
		}
	}
	var buf []byte
	for rank, mg := range mj.Merges {
		a, b := mg[0], mg[1]
		aID, ok1 := m.vocab[a]
		bID, ok2 := m.vocab[b]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("model BPE: merge %d (%q %q): token not in the vocab", rank, a, b)
		}
		// The merged token drops the prefix length from the right part, as
		// tokenizers slices it (without checking the prefix is there).
		p := len(m.subwordPrefix)
		if len(b) < p {
			return nil, fmt.Errorf("model BPE: merge %d: %q is shorter than continuing_subword_prefix", rank, b)
		}
		buf = append(append(buf[:0], a...), b[p:]...)
		newID, ok := m.vocab[string(buf)]
		if !ok {
			return nil, fmt.Errorf("model BPE: merge %d: result %q is not in the vocab", rank, buf)
		}
		// A repeated pair keeps its last rank, as collecting into a HashMap does.
		m.merges[pairKey(aID, bID)] = merge{uint32(rank), newID}
	}
	return m, nil
}

// addTokens registers the added tokens the way AddedVocabulary::add_tokens
// does: a token already in the vocabulary keeps that id, others are numbered
// after the vocabulary in file order (the file's "id" field is only checked
// by the Rust library, with a warning).
func (t *Tokenizer) addTokens(f *fileJSON) {
	modelSize := uint32(len(t.model.vocab))
	maxAdded, haveAdded := uint32(0), false
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			continue
		}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		tok := &addedToken{content: a.Content, special: a.Special, singleWord: a.SingleWord,
			lstrip: a.LStrip, rstrip: a.RStrip, normalized: normalized}
		if old, ok := t.addedByStr[a.Content]; ok {
			tok.id = old.id
		} else if id, ok := t.model.vocab[a.Content]; ok {
			tok.id = id
		} else {
			next := modelSize
			if haveAdded && (maxAdded >= modelSize || modelSize == 0) {
				next = maxAdded + 1
			}
			tok.id = next
		}
		if !haveAdded || tok.id > maxAdded {
			maxAdded, haveAdded = tok.id, true
		}
		if old, ok := t.addedByStr[a.Content]; ok {
			*old = *tok
			continue
		}
		t.added = append(t.added, tok)
		t.addedByStr[tok.content] = tok
		t.addedByID[tok.id] = tok
	}
	// Special tokens come first in the matching sets, as in
	// refresh_added_tokens.
	ordered := make([]*addedToken, 0, len(t.added))
	for _, special := range []bool{true, false} {
		for _, a := range t.added {
			if a.special == special {
				ordered = append(ordered, a)
			}
		}
	}
	for _, a := range ordered {
		if a.normalized {
			t.normTokens = append(t.normTokens, a)
		} else {
			t.nonNormTokens = append(t.nonNormTokens, a)
		}
	}
	t.nonNormalized = newMatcher(t.nonNormTokens)
	t.normalized = newMatcher(t.normTokens)

	t.vocabSize = len(t.model.vocabR)
	for id := range t.addedByID {
		t.vocabSize = max(t.vocabSize, int(id)+1)
	}
}

// Encode returns the ids of text. No special tokens are added around it
// (SmolVLM's tokenizer has no post-processor); special tokens written in the
// text, such as <image>, encode to their single ids.
func (t *Tokenizer) Encode(text string) []int64 {
	ids := make([]uint32, 0, len(text)/3+4)
	// Prompts are mostly special tokens (<image> ×64 per tile): size the
	// segment list for that to avoid regrowing it.
	segs := make([]segment, 0, len(text)/8+1)
	var segs2 []segment
	var pieces []string
	segs = t.nonNormalized.split(segs, text, t.nonNormTokens)
	for _, s := range segs {
		if s.id >= 0 {
			ids = append(ids, uint32(s.id))
			continue
		}
		// With a null normalizer the normalized text is the text itself.
		part := text[s.start:s.end]
		segs2 = t.normalized.split(segs2[:0], part, t.normTokens)
		for _, s2 := range segs2 {
			if s2.id >= 0 {
				ids = append(ids, uint32(s2.id))
				continue
			}
			pieces = append(pieces[:0], part[s2.start:s2.end])
			pieces = t.preTokenize(pieces)
			for _, p := range pieces {
				ids = t.model.tokenize(ids, p, t.byteLevel)
			}
		}
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// preTokenize runs the pre-tokenizer steps over pieces in place.
func (t *Tokenizer) preTokenize(pieces []string) []string {
	var next []string
	for _, st := range t.splitters {
		next = next[:0]
		for _, p := range pieces {
			next = st.split(next, p)
		}
		pieces, next = next, pieces
	}
	return pieces
}

// decodable returns the token string of id for decoding, or false if the
// id is unknown or a special token to skip.
func (t *Tokenizer) decodable(id int64, skipSpecial bool) (string, bool) {
	if id < 0 || id > int64(^uint32(0)) {
		return "", false
	}
	if a, ok := t.addedByID[uint32(id)]; ok {
		if skipSpecial && a.special {
			return "", false
		}
		return a.content, true
	}
	if id >= int64(len(t.model.vocabR)) || !t.model.hasID[id] {
		return "", false
	}
	return t.model.vocabR[id], true
}

// Decode returns the text of ids, like tokenizers' decode: unknown ids are
// dropped, special tokens too if skipSpecial, and bytes that are not valid
// UTF-8 become U+FFFD.
func (t *Tokenizer) Decode(ids []int64, skipSpecial bool) string {
	buf := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		if tok, ok := t.decodable(id, skipSpecial); ok {
			buf = appendTokenBytes(buf, tok)
		}
	}
	if ok := isValidUTF8(buf); ok {
		return string(buf)
	}
	out, _ := appendLossy(make([]byte, 0, len(buf)+8), buf, true)
	return string(out)
}

// TokenToID returns the id of a token string (added tokens first, then
// the model vocabulary).
func (t *Tokenizer) TokenToID(tok string) (int64, bool) {
	if a, ok := t.addedByStr[tok]; ok {
		return int64(a.id), true
	}
	id, ok := t.model.vocab[tok]
	return int64(id), ok
}

// IDToToken returns the token string of an id (byte-level form for model
// tokens, e.g. "Ġyou").
func (t *Tokenizer) IDToToken(id int64) (string, bool) {
	return t.decodable(id, false)
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int64) bool {
	if id < 0 || id > int64(^uint32(0)) {
		return false
	}
	a, ok := t.addedByID[uint32(id)]
	return ok && a.special
}

// VocabSize returns the number of ids, base vocabulary and added tokens
// together: the largest id plus one.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// SpecialTokens returns the contents of the special added tokens in id order.
func (t *Tokenizer) SpecialTokens() []string {
	var sp []*addedToken
	for _, a := range t.added {
		if a.special {
			sp = append(sp, a)
		}
	}
	sort.Slice(sp, func(i, j int) bool { return sp[i].id < sp[j].id })
	out := make([]string, len(sp))
	for i, a := range sp {
		out[i] = a.content
	}
	return out
}

// PreTokenize returns the pieces Encode hands to the model, in order: each
// added token found in text is one piece (its matched text), and the rest is
// split by the pre-tokenizer. Pieces are raw text, before the byte-level
// mapping. Trainers use it to see text exactly as Encode does.
func (t *Tokenizer) PreTokenize(text string) []string {
	var out []string
	for _, s := range t.nonNormalized.split(nil, text, t.nonNormTokens) {
		part := text[s.start:s.end]
		if s.id >= 0 {
			out = append(out, part)
			continue
		}
		for _, s2 := range t.normalized.split(nil, part, t.normTokens) {
			if s2.id >= 0 {
				out = append(out, part[s2.start:s2.end])
				continue
			}
			out = append(out, t.preTokenize([]string{part[s2.start:s2.end]})...)
		}
	}
	return out
}

// TokenBytes returns the bytes id decodes to on its own, before any UTF-8
// repair: a model token may hold part of a multi-byte character. added
// reports whether id is an added token (special or not), whose text is
// never produced by byte-level merges. ok is false for an unknown id.
// Constrained decoding uses it to see the vocabulary as byte strings.
func (t *Tokenizer) TokenBytes(id int64) (b []byte, added, ok bool) {
	tok, ok := t.decodable(id, false)
	if !ok {
		return nil, false, false
	}
	_, added = t.addedByID[uint32(id)]
	return appendTokenBytes(nil, tok), added, true
}
