package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/snapvlm/snapvlm/internal/testtok"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// The golden files are written by scripts/tokenizer-golden/regen.sh with
// the official Hugging Face tokenizers (npm tokenizers@0.23.2).
type goldenCase struct {
	Text        string  `json:"text"`
	IDs         []int64 `json:"ids"`
	Decoded     string  `json:"decoded"`
	DecodedSkip string  `json:"decoded_skip"`
}

type goldenFile struct {
	Generator string       `json:"generator"`
	Cases     []goldenCase `json:"cases"`
	Decodes   []goldenCase `json:"decodes"`
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// loadSmolVLM loads the real SmolVLM tokenizer, third-party data kept
// outside the repository (testtok finds it or skips).
func loadSmolVLM(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(testtok.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// streamDecode feeds ids one at a time and checks every chunk is valid UTF-8.
func streamDecode(t *testing.T, tok *tokenizer.Tokenizer, ids []int64, skip bool) string {
	t.Helper()
	d := tok.NewStreamDecoder(skip)
	var sb strings.Builder
	for _, id := range ids {
		chunk := d.Add(id)
		if !utf8.ValidString(chunk) {
			t.Errorf("stream chunk %q after id %d is not valid UTF-8", chunk, id)
		}
		sb.WriteString(chunk)
	}
	sb.WriteString(d.Flush())
	return sb.String()
}

func checkDecode(t *testing.T, tok *tokenizer.Tokenizer, c goldenCase) {
	t.Helper()
	if got := tok.Decode(c.IDs, false); got != c.Decoded {
		t.Errorf("Decode(%v, false) = %q, want %q", c.IDs, got, c.Decoded)
	}
	if got := tok.Decode(c.IDs, true); got != c.DecodedSkip {
		t.Errorf("Decode(%v, true) = %q, want %q", c.IDs, got, c.DecodedSkip)
	}
	if got := streamDecode(t, tok, c.IDs, false); got != c.Decoded {
		t.Errorf("stream decode of %v = %q, want %q", c.IDs, got, c.Decoded)
	}
	if got := streamDecode(t, tok, c.IDs, true); got != c.DecodedSkip {
		t.Errorf("stream decode (skip special) of %v = %q, want %q", c.IDs, got, c.DecodedSkip)
	}
}

func TestGolden(t *testing.T) {
	fixed := func(p string) func(testing.TB) string { return func(testing.TB) string { return p } }
	tests := []struct {
		name      string
		tokenizer func(testing.TB) string
		golden    string
	}{
		{"smolvlm", testtok.Path, "testdata/golden_smolvlm.json"},
		{"tiny", fixed("testdata/tiny_tokenizer.json"), "testdata/golden_tiny.json"},
		{"flags", fixed("testdata/flags_tokenizer.json"), "testdata/golden_flags.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tokenizer.Load(tt.tokenizer(t))
			if err != nil {
				t.Fatal(err)
			}
			var g goldenFile
			readJSON(t, tt.golden, &g)
			if len(g.Cases) == 0 {
				t.Fatalf("%s has no cases", tt.golden)
			}
			fails := 0
			for _, c := range g.Cases {
				if got := tok.Encode(c.Text); !equalIDs(got, c.IDs) {
					t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
					fails++
				}
				checkDecode(t, tok, c)
				if fails > 20 {
					t.Fatal("too many failures")
				}
			}
			for _, c := range g.Decodes {
				checkDecode(t, tok, c)
			}
		})
	}
}

// TestGoldenSplit covers the Split pre-tokenizer behaviors on the tiny
// tokenizer with its pre_tokenizer replaced.
func TestGoldenSplit(t *testing.T) {
	var g struct {
		Variants []struct {
			PreTokenizer json.RawMessage `json:"pre_tokenizer"`
			Cases        []goldenCase    `json:"cases"`
		} `json:"variants"`
	}
	readJSON(t, "testdata/golden_split.json", &g)
	var base map[string]json.RawMessage
	readJSON(t, "testdata/tiny_tokenizer.json", &base)
	for i, v := range g.Variants {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			base["pre_tokenizer"] = v.PreTokenizer
			data, err := json.Marshal(base)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := tokenizer.FromJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range v.Cases {
				if got := tok.Encode(c.Text); !equalIDs(got, c.IDs) {
					t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
				}
			}
		})
	}
}

// TestMergeFormats checks that merges written as "a b" strings give the same
// (golden) tokenization as the ["a", "b"] pairs of the tiny tokenizer.
func TestMergeFormats(t *testing.T) {
	var file map[string]json.RawMessage
	readJSON(t, "testdata/tiny_tokenizer.json", &file)
	var model map[string]json.RawMessage
	if err := json.Unmarshal(file["model"], &model); err != nil {
		t.Fatal(err)
	}
	var pairs [][2]string
	if err := json.Unmarshal(model["merges"], &pairs); err != nil {
		t.Fatal(err)
	}
	strs := make([]string, len(pairs))
	for i, p := range pairs {
		strs[i] = p[0] + " " + p[1]
	}
	model["merges"], _ = json.Marshal(strs)
	file["model"], _ = json.Marshal(model)
	data, _ := json.Marshal(file)
	tok, err := tokenizer.FromJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	readJSON(t, "testdata/golden_tiny.json", &g)
	for _, c := range g.Cases {
		if got := tok.Encode(c.Text); !equalIDs(got, c.IDs) {
			t.Fatalf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
		}
	}
}

func TestGoldenFilesPresent(t *testing.T) {
	// Guards against an empty regeneration silently passing TestGolden.
	for _, f := range []string{"golden_smolvlm.json", "golden_tiny.json"} {
		var g goldenFile
		readJSON(t, filepath.Join("testdata", f), &g)
		if len(g.Cases) < 2000 || !strings.Contains(g.Generator, "tokenizers@") {
			t.Errorf("%s: %d cases from %q; want >= 2000 from HF tokenizers", f, len(g.Cases), g.Generator)
		}
	}
}

// TestGoldenModelOptions covers unk_token, fuse_unk, byte_fallback and
// ignore_merges on the tiny tokenizer with its model replaced.
func TestGoldenModelOptions(t *testing.T) {
	var g struct {
		Variants []struct {
			Options json.RawMessage `json:"options"`
			Model   json.RawMessage `json:"model"`
			Cases   []goldenCase    `json:"cases"`
		} `json:"variants"`
	}
	readJSON(t, "testdata/golden_model.json", &g)
	var base map[string]json.RawMessage
	readJSON(t, "testdata/tiny_tokenizer.json", &base)
	for i, v := range g.Variants {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			base["model"] = v.Model
			data, err := json.Marshal(base)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := tokenizer.FromJSON(data)
			if err != nil {
				t.Fatalf("options %s: %v", v.Options, err)
			}
			for _, c := range v.Cases {
				if got := tok.Encode(c.Text); !equalIDs(got, c.IDs) {
					t.Errorf("options %s: Encode(%q)\n got %v\nwant %v", v.Options, c.Text, got, c.IDs)
				}
				checkDecode(t, tok, c)
			}
		})
	}
}
