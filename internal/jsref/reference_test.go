package jsref_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/jsref"
	"github.com/snapvlm/snapvlm/internal/jsref/jsreftest"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// newModel writes a random-weight test model of preset into a temporary
// directory and reads its configs.
func newModel(t *testing.T, preset string, variants ...string) *modelconfig.Model {
	t.Helper()
	dir := t.TempDir()
	if err := testmodel.Generate(context.Background(), preset, dir, testmodel.Options{Variants: variants, Seed: 7}); err != nil {
		t.Fatalf("generating %s test model: %v", preset, err)
	}
	m, err := modelconfig.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// requireRef skips the slow reference tests in -short mode and when
// transformers.js cannot run.
func requireRef(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("transformers.js reference runs take seconds each; skipped in -short mode")
	}
	jsreftest.Require(t)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// checkIDs checks what generate() promises: maxNew tokens, or fewer ending
// with an EOS id; every id inside the vocabulary.
func checkIDs(t *testing.T, ids []int64, maxNew int, eos []int64, vocab int) {
	t.Helper()
	if len(ids) == 0 || len(ids) > maxNew {
		t.Fatalf("got %d generated ids %v, want 1..%d", len(ids), ids, maxNew)
	}
	if len(ids) < maxNew && !slices.Contains(eos, ids[len(ids)-1]) {
		t.Errorf("stopped after %d < %d tokens without EOS %v: %v", len(ids), maxNew, eos, ids)
	}
	for i, id := range ids {
		if id < 0 || id >= int64(vocab) {
			t.Errorf("token %d = %d outside the vocabulary [0, %d)", i, id, vocab)
		}
	}
}

func TestSmoke(t *testing.T) {
	requireRef(t)
	for _, preset := range []string{"tiny512", "tiny384"} {
		t.Run(preset, func(t *testing.T) {
			m := newModel(t, preset, testmodel.FP32)
			ids, text, err := jsref.Smoke(ctx(t), m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			checkIDs(t, ids, 8, m.Generation.EOSTokenID, m.Config.TextConfig.VocabSize)
			t.Logf("transformers.js generated %v = %q", ids, text)
		})
	}
}

// specialIDs reads the ids of added tokens from the model's tokenizer.json.
func specialIDs(t *testing.T, dir string, names ...string) []int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, modelconfig.TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	var tj struct {
		AddedTokens []struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(b, &tj); err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(names))
	for i, n := range names {
		j := slices.IndexFunc(tj.AddedTokens, func(a struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		}) bool {
			return a.Content == n
		})
		if j < 0 {
			t.Fatalf("tokenizer.json has no added token %s", n)
		}
		ids[i] = tj.AddedTokens[j].ID
	}
	return ids
}

// pattern is a deterministic single-tile image in [-1, 1] (normalised
// pixel range); phase changes the picture.
func pattern(side int, phase float64) []float32 {
	px := make([]float32, 3*side*side)
	for c := range 3 {
		for y := range side {
			for x := range side {
				v := math.Sin(float64(x)/17+phase*float64(c+1)) * math.Cos(float64(y)/23-phase)
				px[(c*side+y)*side+x] = float32(v)
			}
		}
	}
	return px
}

func TestGenerate(t *testing.T) {
	requireRef(t)
	m := newModel(t, "tiny512", testmodel.FP32, testmodel.Q4, testmodel.FP16)
	vocab := m.Config.TextConfig.VocabSize
	eos := []int64(m.Generation.EOSTokenID)
	side := m.Config.VisionConfig.ImageSize
	seq := m.ImageSeqLen()
	if side == 0 || seq == 0 || m.Config.ImageTokenID == 0 || len(eos) == 0 {
		t.Fatalf("test model configs lack image_size/image_seq_len/image_token_id/eos: %+v", m.Config)
	}

	// <|im_start|>User:<fake><global-img><image>×seq<fake>text<end_of_utterance>\nAssistant:
	sp := specialIDs(t, m.Dir, "<|im_start|>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
	text := []int64{101, 102, 103, 104, 105, 106, 107}
	textPrompt := slices.Concat([]int64{sp[0]}, text, []int64{sp[3]}, text[:3])
	imgPrompt := slices.Concat([]int64{sp[0]}, text[:2], []int64{sp[1], sp[2]},
		slices.Repeat([]int64{m.Config.ImageTokenID}, seq), []int64{sp[1]}, text, []int64{sp[3]}, text[:3])
	shape := []int64{1, 1, 3, int64(side), int64(side)}
	imgA, imgB := pattern(side, 0), pattern(side, 1.3)

	const maxNew = 12
	fp32 := map[string]string{jsref.VisionEncoder: "fp32", jsref.EmbedTokens: "fp32", jsref.Decoder: "fp32"}
	mixed := map[string]string{jsref.VisionEncoder: "q4", jsref.EmbedTokens: "fp32", jsref.Decoder: "fp16"}
	textOnlySessions := []string{jsref.Decoder, jsref.EmbedTokens}
	allSessions := []string{jsref.Decoder, jsref.EmbedTokens, jsref.VisionEncoder}

	run := func(t *testing.T, r jsref.Request) *jsref.Result {
		t.Helper()
		r.ModelDir, r.MaxNewTokens = m.Dir, maxNew
		res, err := jsref.Generate(ctx(t), r)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, res.GeneratedIDs, maxNew, eos, vocab)
		if !slices.Equal(res.EOSTokenIDs, eos) {
			t.Errorf("transformers.js stops on %v, want generation_config.json's %v", res.EOSTokenIDs, eos)
		}
		t.Logf("%v (load %v, generate %v)", res.GeneratedIDs, res.Load.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond))
		return res
	}

	var textIDs, imgIDs []int64
	t.Run("text", func(t *testing.T) {
		a := run(t, jsref.Request{Dtype: fp32, InputIDs: textPrompt})
		if !slices.Equal(a.Sessions, textOnlySessions) {
			t.Errorf("text-only sessions %v, want %v (no vision encoder)", a.Sessions, textOnlySessions)
		}
		b := run(t, jsref.Request{Dtype: fp32, InputIDs: textPrompt})
		if !slices.Equal(a.GeneratedIDs, b.GeneratedIDs) {
			t.Errorf("not deterministic: %v then %v", a.GeneratedIDs, b.GeneratedIDs)
		}
		textIDs = a.GeneratedIDs
	})
	t.Run("text with vision loaded", func(t *testing.T) {
		// The full SmolVLM class must agree with the text-only load.
		res := run(t, jsref.Request{Dtype: fp32, InputIDs: textPrompt, LoadVision: true})
		if !slices.Equal(res.Sessions, allSessions) {
			t.Errorf("sessions %v, want %v", res.Sessions, allSessions)
		}
		if textIDs != nil && !slices.Equal(res.GeneratedIDs, textIDs) {
			t.Errorf("full model generated %v, text-only load %v", res.GeneratedIDs, textIDs)
		}
	})
	t.Run("image", func(t *testing.T) {
		r := jsref.Request{Dtype: fp32, InputIDs: imgPrompt, Pixels: imgA, PixelShape: shape}
		a := run(t, r)
		if !slices.Equal(a.Sessions, allSessions) {
			t.Errorf("sessions %v, want %v", a.Sessions, allSessions)
		}
		b := run(t, r)
		if !slices.Equal(a.GeneratedIDs, b.GeneratedIDs) {
			t.Errorf("not deterministic: %v then %v", a.GeneratedIDs, b.GeneratedIDs)
		}
		imgIDs = a.GeneratedIDs
	})
	t.Run("other image", func(t *testing.T) {
		// The pixels must reach the model: another picture, other tokens.
		res := run(t, jsref.Request{Dtype: fp32, InputIDs: imgPrompt, Pixels: imgB, PixelShape: shape})
		if imgIDs != nil && slices.Equal(res.GeneratedIDs, imgIDs) {
			t.Errorf("two different images both generated %v", imgIDs)
		}
	})
	t.Run("mixed dtypes", func(t *testing.T) {
		// The test model's variants compute the same function (grid weights
		// exact in fp16 and 4 bits), so the greedy tokens must not change.
		res := run(t, jsref.Request{Dtype: mixed, InputIDs: imgPrompt, Pixels: imgA, PixelShape: shape})
		if imgIDs != nil && !slices.Equal(res.GeneratedIDs, imgIDs) {
			t.Errorf("q4/fp32/fp16 generated %v, fp32 %v", res.GeneratedIDs, imgIDs)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  jsref.Request
			want string
		}{
			{"unknown dtype", jsref.Request{Dtype: map[string]string{jsref.Decoder: "q5"}, InputIDs: textPrompt}, `"q5" is not one of`},
			{"unknown session", jsref.Request{Dtype: map[string]string{"model": "fp32"}, InputIDs: textPrompt}, `unknown session "model"`},
			{"token count", jsref.Request{InputIDs: textPrompt, Pixels: imgA, PixelShape: shape}, "Number of tokens and features do not match"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.req.ModelDir, tc.req.MaxNewTokens = m.Dir, 2
				_, err := jsref.Generate(ctx(t), tc.req)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Generate() error = %v, want one containing %q", err, tc.want)
				}
			})
		}
	})
}
