package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/snapvlm/snapvlm/internal/testtok"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// Strings of spec §3.2: the expansion of one <image> placeholder.
const (
	fake   = "<fake_token_around_image>"
	global = "<global-img>"
	image  = "<image>"
)

func expandImage(rows, cols, n int) string {
	var sb strings.Builder
	if rows == 0 {
		return fake + global + strings.Repeat(image, n) + fake
	}
	for r := 1; r <= rows; r++ {
		for c := 1; c <= cols; c++ {
			fmt.Fprintf(&sb, "%s<row_%d_col_%d>%s", fake, r, c, strings.Repeat(image, n))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\n" + fake + global + strings.Repeat(image, n) + fake)
	return sb.String()
}

// imagePrompt is spec §3.3's prompt: one image then the question.
func imagePrompt(rows, cols int) string {
	return "<|im_start|>User:" + expandImage(rows, cols, 64) +
		"Can you describe this image?<end_of_utterance>\nAssistant:"
}

// ids concatenates literal ids and runs written as rep(id, n).
func ids(parts ...[]int64) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func lit(v ...int64) []int64 { return v }

func rep(id int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = id
	}
	return out
}

// TestSpecPrompts checks the token sequences written out in spec §3.3.
func TestSpecPrompts(t *testing.T) {
	tok := loadSmolVLM(t)
	question := lit(7306, 346, 5125, 451, 2443, 47, 49279, 198, 9519, 9531, 42)
	grid := ids(
		lit(1, 11126, 42),
		lit(49189, 49153), rep(49190, 64), lit(49189, 49154), rep(49190, 64), lit(49189, 49155), rep(49190, 64), lit(49189, 49156), rep(49190, 64), lit(198),
		lit(49189, 49159), rep(49190, 64), lit(49189, 49160), rep(49190, 64), lit(49189, 49161), rep(49190, 64), lit(49189, 49162), rep(49190, 64), lit(198),
		lit(49189, 49165), rep(49190, 64), lit(49189, 49166), rep(49190, 64), lit(49189, 49167), rep(49190, 64), lit(49189, 49168), rep(49190, 64), lit(198),
		lit(49189, 49171), rep(49190, 64), lit(49189, 49172), rep(49190, 64), lit(49189, 49173), rep(49190, 64), lit(49189, 49174), rep(49190, 64), lit(1116),
		lit(49189, 49152), rep(49190, 64), lit(49189),
		question,
	)
	single := ids(lit(1, 11126, 42, 49189, 49152), rep(49190, 64), lit(49189), question)
	textOnly := lit(1, 11126, 42, 1978, 346, 5125, 451, 2443, 47, 49279, 198, 9519, 9531, 42)
	tests := []struct {
		name    string
		text    string
		want    []int64
		wantLen int
	}{
		{"grid 4x4", imagePrompt(4, 4), grid, 1141},
		{"single", imagePrompt(0, 0), single, 81},
		{"text only", "<|im_start|>User: Can you describe this image?<end_of_utterance>\nAssistant:", textOnly, 14},
		{"grid 2x4", imagePrompt(2, 4), nil, 611},
		{"grid 1x1", imagePrompt(1, 1), nil, 148},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tok.Encode(tt.text)
			if len(got) != tt.wantLen {
				t.Errorf("got %d tokens, want %d", len(got), tt.wantLen)
			}
			if tt.want != nil && !equalIDs(got, tt.want) {
				t.Errorf("Encode\n got %v\nwant %v", got, tt.want)
			}
			if back := tok.Decode(got, false); back != tt.text {
				t.Errorf("Decode(Encode(text)) = %q, want the text back", back)
			}
		})
	}
}

// TestVocabulary checks the special-token table of spec §1.2.
func TestVocabulary(t *testing.T) {
	tok := loadSmolVLM(t)
	if got := tok.VocabSize(); got != 49280 {
		t.Errorf("VocabSize() = %d, want 49280", got)
	}
	tests := []struct {
		token   string
		id      int64
		special bool
	}{
		{"<|endoftext|>", 0, true},
		{"<|im_start|>", 1, true},
		{"<|im_end|>", 2, true},
		{"<global-img>", 49152, true},
		{"<row_1_col_1>", 49153, true},
		{"<row_6_col_6>", 49188, true},
		{"<fake_token_around_image>", 49189, true},
		{"<image>", 49190, true},
		{"<|reserved_special_token_0|>", 49191, true},
		{"<|reserved_special_token_87|>", 49278, true},
		{"<end_of_utterance>", 49279, true},
		{"ĊĊ", 1116, false},
		{"Ċ", 198, false},
		{"User", 11126, false},
		{"Ġyou", 346, false},
	}
	for _, tt := range tests {
		id, ok := tok.TokenToID(tt.token)
		if !ok || id != tt.id {
			t.Errorf("TokenToID(%q) = %d, %v; want %d", tt.token, id, ok, tt.id)
		}
		if s, ok := tok.IDToToken(tt.id); !ok || s != tt.token {
			t.Errorf("IDToToken(%d) = %q, %v; want %q", tt.id, s, ok, tt.token)
		}
		if got := tok.IsSpecial(tt.id); got != tt.special {
			t.Errorf("IsSpecial(%d) = %v, want %v", tt.id, got, tt.special)
		}
	}
	for _, id := range []int64{-1, 49280, 1 << 40} {
		if s, ok := tok.IDToToken(id); ok {
			t.Errorf("IDToToken(%d) = %q, want not found", id, s)
		}
	}
	if _, ok := tok.TokenToID("<no such token>"); ok {
		t.Error("TokenToID of an unknown token reported found")
	}
}

// TestUnsupported checks that components the port does not implement are
// rejected with an error naming them.
func TestUnsupported(t *testing.T) {
	var base map[string]json.RawMessage
	readJSON(t, "testdata/tiny_tokenizer.json", &base)
	tests := []struct {
		field, value, wantErr string
	}{
		{"pre_tokenizer", `{"type": "Metaspace", "replacement": "▁"}`, `pre_tokenizer type "Metaspace" is not supported`},
		{"pre_tokenizer", `{"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "Digits"}]}`, `pre_tokenizer "Digits" after ByteLevel`},
		{"pre_tokenizer", `{"type": "Split", "pattern": {"Regex": "\\s+(?!\\S)"}, "behavior": "Isolated"}`, `regex`},
		{"pre_tokenizer", `{"type": "Split", "pattern": {"Regex": "a(?=b)"}, "behavior": "Isolated"}`, `regex "a(?=b)" is not supported`},
		{"pre_tokenizer", `{"type": "Split", "pattern": {"String": "x"}, "behavior": "Weird"}`, `behavior "Weird"`},
		{"normalizer", `{"type": "NFC"}`, `normalizer type "NFC" is not supported`},
		{"decoder", `{"type": "WordPiece"}`, `decoder type "WordPiece" is not supported`},
		{"decoder", `null`, `decoder null`},
		{"post_processor", `{"type": "TemplateProcessing"}`, `post_processor type "TemplateProcessing"`},
		{"model", `{"type": "Unigram", "vocab": []}`, `model type "Unigram" is not supported`},
		{"model", `{"type": "BPE", "dropout": 0.1, "vocab": {}, "merges": []}`, `dropout`},
		{"model", `{"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}`, `merge 0`},
		{"model", `{"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 0}, "merges": []}`, `unk_token "<unk>"`},
		{"truncation", `{"max_length": 5}`, `truncation`},
	}
	for _, tt := range tests {
		t.Run(tt.wantErr, func(t *testing.T) {
			f := make(map[string]json.RawMessage, len(base))
			for k, v := range base {
				f[k] = v
			}
			f[tt.field] = json.RawMessage(tt.value)
			data, _ := json.Marshal(f)
			_, err := tokenizer.FromJSON(data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("FromJSON with %s = %s: error %v, want one containing %q", tt.field, tt.value, err, tt.wantErr)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := tokenizer.Load("testdata/does-not-exist.json"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	if _, err := tokenizer.FromJSON([]byte("{")); err == nil {
		t.Error("FromJSON of broken JSON succeeded")
	}
}

// TestConcurrent encodes from many goroutines at once (run with -race).
func TestConcurrent(t *testing.T) {
	tok, err := tokenizer.Load("testdata/tiny_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	readJSON(t, "testdata/golden_tiny.json", &g)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(g.Cases); i += 3 {
				c := g.Cases[i]
				if got := tok.Encode(c.Text); !equalIDs(got, c.IDs) {
					errs <- fmt.Sprintf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestStreamDecoderHoldsPartialRunes feeds the byte tokens of "€" (E2 82
// AC) one by one: nothing may come out before the rune is complete.
func TestStreamDecoderHoldsPartialRunes(t *testing.T) {
	tok, err := tokenizer.Load("testdata/tiny_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	// In the tiny tokenizer byte b has id 17+b (bpetrain's layout); its
	// byte-level strings come from GPT-2's table: 0xE2 'â', 0x82 'Ĥ', 0xAC '¬'.
	for b, s := range map[int64]string{0xE2: "â", 0x82: "Ĥ", 0xAC: "¬"} {
		if got, ok := tok.IDToToken(17 + b); !ok || got != s {
			t.Fatalf("IDToToken(%d) = %q, want %q", 17+b, got, s)
		}
	}
	tests := []struct {
		name string
		ids  []int64
		want []string // output of each Add, then of Flush
	}{
		{"complete", []int64{17 + 0xE2, 17 + 0x82, 17 + 0xAC}, []string{"", "", "€", ""}},
		{"truncated", []int64{17 + 0xE2, 17 + 0x82}, []string{"", "", "\uFFFD"}},
		{"broken", []int64{17 + 0xE2, 17 + 'a'}, []string{"", "\uFFFDa", ""}},
		{"special between", []int64{17 + 0xE2, 0, 17 + 0x82}, []string{"", "\uFFFD<|endoftext|>", "\uFFFD", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tok.NewStreamDecoder(false)
			for i, id := range tt.ids {
				if got := d.Add(id); got != tt.want[i] {
					t.Errorf("Add #%d (%d) = %q, want %q", i, id, got, tt.want[i])
				}
			}
			if got := d.Flush(); got != tt.want[len(tt.ids)] {
				t.Errorf("Flush() = %q, want %q", got, tt.want[len(tt.ids)])
			}
		})
	}
}

func BenchmarkEncodeImagePrompt(b *testing.B) {
	tok := loadSmolVLM(b)
	text := imagePrompt(4, 4)
	if n := len(tok.Encode(text)); n != 1141 {
		b.Fatalf("prompt has %d tokens, want 1141", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkEncodeText(b *testing.B) {
	tok := loadSmolVLM(b)
	text := strings.Repeat("The image shows a small red boat on a calm lake at sunrise, 2 people and 1 dog. ", 20)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkLoad(b *testing.B) {
	path := testtok.Path(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokenizer.Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	tok := loadSmolVLM(b)
	ids := tok.Encode(strings.Repeat("Über 3 Boote, 日本語 und 🙂 Emoji. ", 10))
	b.ReportAllocs()
	for b.Loop() {
		d := tok.NewStreamDecoder(true)
		for _, id := range ids {
			d.Add(id)
		}
		d.Flush()
	}
}

// TestInvalidUTF8 checks that text that is not valid UTF-8 (which Go strings
// may hold but HF's never do) encodes without panicking and decodes to the
// replacement character, as from_utf8_lossy would render those bytes.
func TestInvalidUTF8(t *testing.T) {
	tok, err := tokenizer.Load("testdata/tiny_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"\xff abc", "\uFFFD abc"},
		{"a\xe2\x82", "a\uFFFD"},
		{"<image>\xc3", "<image>\uFFFD"},
	}
	for _, tt := range tests {
		if got := tok.Decode(tok.Encode(tt.in), false); got != tt.want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
