package snapvlm

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/jsref"
	"github.com/snapvlm/snapvlm/internal/jsref/jsreftest"
)

// TestAgainstTransformersJS runs transformers.js's own generate() on the
// same generated model, prompt ids and pixel values (from our processor: its
// own resizing differs from Pillow), greedy, and requires the same ids.
func TestAgainstTransformersJS(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: starts node for every case")
	}
	jsreftest.Require(t)
	wide, square := pngImage(t, 300, 200, 0, false), pngImage(t, 100, 100, 1, false)
	cases := []struct {
		name, preset, dtype string
		images              []*Image
		noSplit             bool
		visionBatch         int
	}{
		{"512 split fp32", "tiny512", "fp32", []*Image{wide}, false, 0},
		{"512 no-split fp32", "tiny512", "fp32", []*Image{wide}, true, 0},
		{"512 two images q4", "tiny512", "q4", []*Image{wide, square}, true, 0},
		{"512 split fp16 kv", "tiny512", "fp16", []*Image{wide}, false, 0},
		{"512 text only q4", "tiny512", "q4", nil, false, 0},
		{"512 split q4f16 (float16 I/O)", "tiny512", "q4f16", []*Image{wide}, false, 0},
		{"384 split fp32", "tiny384", "fp32", []*Image{wide}, false, 0},
		{"384 no-split q4", "tiny384", "q4", []*Image{square}, true, 0},
		{"384 text only fp16", "tiny384", "fp16", nil, false, 0},
		// The exports' other quantizations (transformers.js names
		// "quantized" q8). Their activations are quantized per tensor, so
		// results depend on what runs together: transformers.js runs all
		// tiles at once and prefills the whole prompt at once, snapvlm one
		// tile and 256 tokens at a time by default; 64 (and an unbounded
		// prefill chunk) run them as transformers.js does.
		{"512 split int8 (all tiles in one run)", "tiny512+all", "int8", []*Image{wide}, false, 64},
		{"512 no-split uint8", "tiny512+all", "uint8", []*Image{wide}, true, 0},
		{"512 no-split quantized", "tiny512+all", "quantized", []*Image{square}, true, 0},
		{"512 split bnb4", "tiny512+all", "bnb4", []*Image{wide}, false, 0},
		{"384 no-split int8", "tiny384+all", "int8", []*Image{square}, true, 0},
	}
	const maxNew = 20
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefillChunk := 0
			if c.visionBatch > 0 {
				prefillChunk = 1 << 20
			}
			m := loadModel(t, c.preset, Options{Dtype: c.dtype, TextOnly: len(c.images) == 0, VisionBatch: c.visionBatch, PrefillChunk: prefillChunk})
			req := Request{Messages: []Message{UserMessage("Can you describe this?", c.images...)}, GenerateOptions: GenerateOptions{MaxNewTokens: maxNew, NoSplit: c.noSplit}}
			if why := m.FileReasons()[GraphDecoder]; !strings.Contains(why, "GroupQueryAttention rewrite;") {
				t.Errorf("decoder attention not rewritten: %s", why)
			}
			ours := greedy(t, m, req)

			jsDtype := c.dtype
			if jsDtype == "quantized" {
				jsDtype = "q8"
			}
			jr := jsref.Request{
				ModelDir:     m.Dir(),
				Dtype:        map[string]string{jsref.VisionEncoder: jsDtype, jsref.EmbedTokens: jsDtype, jsref.Decoder: jsDtype},
				InputIDs:     ours.PromptTokens,
				MaxNewTokens: maxNew,
				LoadVision:   len(c.images) > 0,
			}
			if len(c.images) > 0 {
				var err error
				if jr.Pixels, jr.PixelShape, err = m.PixelValues(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
			ref, err := jsref.Generate(context.Background(), jr)
			if err != nil {
				t.Fatal(err)
			}
			// transformers.js stops only on generation_config's eos; ours also
			// on text_config's and <end_of_utterance>, so ours may be shorter,
			// ending on one of those.
			want := ref.GeneratedIDs
			if len(ours.Tokens) < len(want) {
				last := ours.Tokens[len(ours.Tokens)-1]
				if !m.eos[last] {
					t.Fatalf("ours stopped early on %d, not an end token", last)
				}
				want = want[:len(ours.Tokens)]
			}
			if !slices.Equal(ours.Tokens, want) {
				t.Fatalf("generated ids differ\n ours:            %v\n transformers.js: %v", ours.Tokens, ref.GeneratedIDs)
			}
			t.Logf("%d ids identical (transformers.js sessions %v)", len(ours.Tokens), ref.Sessions)
		})
	}
}
