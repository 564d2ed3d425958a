package tokenizer_test

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// fuzzTokenizers are the committed tokenizers (byte-level BPE with special
// tokens; the flags one adds lstrip/rstrip/single_word/normalized tokens).
func fuzzTokenizers(f *testing.F) []*tokenizer.Tokenizer {
	var toks []*tokenizer.Tokenizer
	for _, p := range []string{"testdata/tiny_tokenizer.json", "testdata/flags_tokenizer.json"} {
		tok, err := tokenizer.Load(p)
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tok)
	}
	return toks
}

// goldenTexts are seed strings: the first cases of the tiny golden set.
func goldenTexts(f *testing.F, n int) []string {
	var g goldenFile
	readJSON(f, "testdata/golden_tiny.json", &g)
	var out []string
	for i, c := range g.Cases {
		if i%max(1, len(g.Cases)/n) == 0 {
			out = append(out, c.Text)
		}
	}
	return out
}

// FuzzEncodeDecode: byte-level BPE without a normalizer is lossless, so
// decoding what the tiny tokenizer's Encode gives returns the text; the
// stream decoder agrees with Decode and never splits a UTF-8 sequence.
func FuzzEncodeDecode(f *testing.F) {
	toks := fuzzTokenizers(f)
	for _, s := range goldenTexts(f, 60) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for ti, tok := range toks {
			ids := tok.Encode(text)
			if !utf8.ValidString(text) {
				continue // tokenizers takes Rust strings: always valid UTF-8
			}
			// The flags tokenizer's added tokens "é", "ü" are decoded through
			// the byte-level decoder like HF does (one byte each: "\ufffd"),
			// so only the tiny tokenizer round-trips every text.
			if got := tok.Decode(ids, false); ti == 0 && got != text {
				t.Fatalf("tokenizer %d: Decode(Encode(%q)) = %q (ids %v)", ti, text, got, ids)
			}
			for _, skip := range []bool{false, true} {
				d := tok.NewStreamDecoder(skip)
				var sb strings.Builder
				for _, id := range ids {
					chunk := d.Add(id)
					if !utf8.ValidString(chunk) {
						t.Fatalf("tokenizer %d: stream chunk %q is not valid UTF-8", ti, chunk)
					}
					sb.WriteString(chunk)
				}
				sb.WriteString(d.Flush())
				if want := tok.Decode(ids, skip); sb.String() != want {
					t.Fatalf("tokenizer %d: stream decode (skip %v) %q, Decode %q", ti, skip, sb.String(), want)
				}
			}
		}
	})
}

// FuzzStreamDecode feeds arbitrary ids (in and out of the vocabulary,
// negative, byte fragments) to Decode and the stream decoder.
func FuzzStreamDecode(f *testing.F) {
	toks := fuzzTokenizers(f)
	f.Add([]byte{0, 1, 2, 3}, false)
	f.Add([]byte{0xff, 0xff, 0x7f, 0x02, 0x80, 0x02, 0x00, 0x00}, true)
	f.Add([]byte("\xc3\x00\xa9\x00"), false)
	f.Fuzz(func(t *testing.T, data []byte, skip bool) {
		var ids []int64
		for len(data) >= 2 {
			ids = append(ids, int64(int16(binary.LittleEndian.Uint16(data))))
			data = data[2:]
		}
		for ti, tok := range toks {
			want := tok.Decode(ids, skip)
			if !utf8.ValidString(want) {
				t.Fatalf("tokenizer %d: Decode(%v) = %q is not valid UTF-8", ti, ids, want)
			}
			d := tok.NewStreamDecoder(skip)
			var sb strings.Builder
			for _, id := range ids {
				chunk := d.Add(id)
				if !utf8.ValidString(chunk) {
					t.Fatalf("tokenizer %d: stream chunk %q is not valid UTF-8", ti, chunk)
				}
				sb.WriteString(chunk)
			}
			sb.WriteString(d.Flush())
			if sb.String() != want {
				t.Fatalf("tokenizer %d: stream decode of %v = %q, Decode %q", ti, ids, sb.String(), want)
			}
		}
	})
}

// FuzzFromJSON loads arbitrary tokenizer.json bytes; whatever loads must
// encode and decode without panicking. Seeds: the committed tokenizers.
func FuzzFromJSON(f *testing.F) {
	for _, p := range []string{"testdata/tiny_tokenizer.json", "testdata/flags_tokenizer.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "decoder": {"type": "ByteLevel"}, "added_tokens": [{"id": 3, "content": "<x>", "special": true}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := tokenizer.FromJSON(data)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab", "Hello world, it's 42 日本 🙂 <image>\n\n", "<x>a<x>"} {
			ids := tok.Encode(s)
			tok.Decode(ids, false)
			tok.Decode(ids, true)
			d := tok.NewStreamDecoder(false)
			for _, id := range ids {
				d.Add(id)
			}
			d.Flush()
		}
		tok.Decode([]int64{-1, 0, 1, 2, 3, int64(tok.VocabSize()), 1 << 40}, false)
	})
}
