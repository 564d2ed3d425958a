package prompt

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/testtok"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// loadTokenizer loads the real SmolVLM-256M tokenizer, third-party data
// kept outside the repository (testtok finds it or skips).
func loadTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(testtok.Path(t))
	if err != nil {
		t.Fatalf("tokenizer.Load: %v", err)
	}
	return tok
}

// rle decodes the run-length notation of spec §3.3 ("49190x64").
func rle(t *testing.T, s string) []int64 {
	t.Helper()
	var ids []int64
	for _, f := range strings.Fields(s) {
		id, n, found := strings.Cut(f, "x")
		reps := 1
		if found {
			var err error
			if reps, err = strconv.Atoi(n); err != nil {
				t.Fatalf("bad run %q", f)
			}
		}
		v, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			t.Fatalf("bad id %q", f)
		}
		for range reps {
			ids = append(ids, v)
		}
	}
	return ids
}

// Spec §3.3, one image in a 4×4 grid, N = 64: 1141 tokens.
const spec4x4IDs = `1 11126 42
49189 49153 49190x64 49189 49154 49190x64 49189 49155 49190x64 49189 49156 49190x64 198
49189 49159 49190x64 49189 49160 49190x64 49189 49161 49190x64 49189 49162 49190x64 198
49189 49165 49190x64 49189 49166 49190x64 49189 49167 49190x64 49189 49168 49190x64 198
49189 49171 49190x64 49189 49172 49190x64 49189 49173 49190x64 49189 49174 49190x64 1116
49189 49152 49190x64 49189
7306 346 5125 451 2443 47 49279 198 9519 9531 42`

// Spec §3.3, same prompt in the single form: 81 tokens.
const specSingleIDs = `1 11126 42 49189 49152 49190x64 49189 7306 346 5125 451 2443 47 49279 198 9519 9531 42`

// Spec §3.3, text only: 14 tokens.
const specTextIDs = `1 11126 42 1978 346 5125 451 2443 47 49279 198 9519 9531 42`

func TestPromptTokens(t *testing.T) {
	tok := loadTokenizer(t)
	tp, err := NewTemplate(SmolVLMTemplate, "<|im_start|>", "<end_of_utterance>")
	if err != nil {
		t.Fatal(err)
	}
	const q = "Can you describe this image?"
	withImage := []Message{user(img, txt(q))}
	textOnly := []Message{user(txt(q))}

	cases := []struct {
		name    string
		msgs    []Message
		grids   []ImageGrid
		seqLen  int
		wantIDs string // run-length ids from the spec, if given
		wantLen int
		wantNN  int // occurrences of "\n\n" = 1116
	}{
		{"4x4", withImage, []ImageGrid{{4, 4}}, 64, spec4x4IDs, 1141, 1},
		{"single", withImage, []ImageGrid{{}}, 64, specSingleIDs, 81, 0},
		{"text only", textOnly, nil, 64, specTextIDs, 14, 0},
		{"2x4", withImage, []ImageGrid{{2, 4}}, 64, "", 611, 1},
		{"1x1", withImage, []ImageGrid{{1, 1}}, 64, "", 148, 1},
		{"4x4 N=81", withImage, []ImageGrid{{4, 4}}, 81, "", 1430, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rendered, err := tp.Render(tc.msgs, true)
			if err != nil {
				t.Fatal(err)
			}
			text, err := Expander{ImageSeqLen: tc.seqLen}.Expand(rendered, tc.grids, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids := tok.Encode(text)
			if len(ids) != tc.wantLen {
				t.Errorf("%d tokens, want %d", len(ids), tc.wantLen)
			}
			if tc.wantIDs != "" {
				if want := rle(t, tc.wantIDs); !slices.Equal(ids, want) {
					i := 0
					for i < len(ids) && i < len(want) && ids[i] == want[i] {
						i++
					}
					t.Errorf("ids differ from spec §3.3 first at index %d (got %d tokens, want %d)", i, len(ids), len(want))
				}
			}
			nn := 0
			for _, id := range ids {
				if id == 1116 {
					nn++
				}
			}
			if nn != tc.wantNN {
				t.Errorf(`"\n\n" (1116) ×%d, want ×%d`, nn, tc.wantNN)
			}
			// Every image costs ImageTokenCount tokens on top of the text.
			extra := 0
			for _, g := range tc.grids {
				extra += ImageTokenCount(g, tc.seqLen)
			}
			if len(ids) != 14+extra {
				t.Errorf("%d tokens, want 14 text tokens + %d image tokens", len(ids), extra)
			}
		})
	}
}
