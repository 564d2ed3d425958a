package testmodel

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/testtok"
)

var tinyPresets = []string{"tiny512", "tiny384"}

// io is an expected graph input or output: dtype and dims, each a fixed
// size or a symbolic name.
type io struct {
	name  string
	dtype ort.DType
	dims  []any
}

func checkIO(t *testing.T, what string, got []ort.IOInfo, want []io) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d entries, want %d", what, len(got), len(want))
		return
	}
	for i, w := range want {
		g := got[i]
		var dims []string
		for j := range g.Shape {
			if g.DimNames[j] != "" {
				dims = append(dims, g.DimNames[j])
			} else {
				dims = append(dims, fmt.Sprint(g.Shape[j]))
			}
		}
		var wd []string
		for _, d := range w.dims {
			wd = append(wd, fmt.Sprint(d))
		}
		if g.Name != w.name || g.DType != w.dtype || !slices.Equal(dims, wd) {
			t.Errorf("%s %d: %s %v %v, want %s %v %v", what, i, g.Name, g.DType, dims, w.name, w.dtype, wd)
		}
	}
}

// TestIOContracts checks names, dtypes and shapes (with the symbolic names
// of spec §5) of every graph of every tiny preset and variant.
func TestIOContracts(t *testing.T) {
	for _, name := range tinyPresets {
		m := generated(t, name)
		p := m.p
		V := m.tok.vocabSize
		for _, v := range Variants() {
			t.Run(name+"/"+v, func(t *testing.T) {
				kv := ort.Float32
				if v == FP16 {
					kv = ort.Float16
				}
				vis := m.session(t, "vision_encoder", v)
				checkIO(t, "vision inputs", vis.Inputs(), []io{
					{"pixel_values", ort.Float32, []any{"batch_size", "num_images", 3, p.tile, p.tile}},
					{"pixel_attention_mask", ort.Bool, []any{"batch_size", "num_images", p.tile, p.tile}},
				})
				checkIO(t, "vision outputs", vis.Outputs(), []io{
					{"image_features", ort.Float32, []any{"num_frames", p.imageSeqLen(), p.hidden}},
				})
				emb := m.session(t, "embed_tokens", v)
				checkIO(t, "embed inputs", emb.Inputs(), []io{{"input_ids", ort.Int64, []any{"batch_size", "sequence_length"}}})
				checkIO(t, "embed outputs", emb.Outputs(), []io{{"inputs_embeds", ort.Float32, []any{"batch_size", "sequence_length", p.hidden}}})
				dec := m.session(t, "decoder_model_merged", v)
				ins := []io{
					{"inputs_embeds", ort.Float32, []any{"batch_size", "sequence_length", p.hidden}},
					{"attention_mask", ort.Int64, []any{"batch_size", "total_sequence_length"}},
					{"position_ids", ort.Int64, []any{"batch_size", "sequence_length"}},
				}
				outs := []io{{"logits", ort.Float32, []any{"batch_size", "sequence_length", V}}}
				for i := 0; i < p.layers; i++ {
					for _, k := range []string{"key", "value"} {
						ins = append(ins, io{fmt.Sprintf("past_key_values.%d.%s", i, k), kv, []any{"batch_size", p.kvHeads, "past_sequence_length", p.headDim}})
						outs = append(outs, io{fmt.Sprintf("present.%d.%s", i, k), kv, []any{"batch_size", p.kvHeads, "total_sequence_length", p.headDim}})
					}
				}
				checkIO(t, "decoder inputs", dec.Inputs(), ins)
				checkIO(t, "decoder outputs", dec.Outputs(), outs)
			})
		}
	}
}

// TestPrefillAndDecode runs every preset and variant end to end: vision on
// a 1×2 grid, merge, prefill and two decode steps.
func TestPrefillAndDecode(t *testing.T) {
	for _, name := range tinyPresets {
		m := generated(t, name)
		M := m.p.tile
		frames := testImage(2*M, M, 3).frames(M)
		ids := m.promptIDs(1, 2)
		var ref run
		for _, v := range Variants() {
			t.Run(name+"/"+v, func(t *testing.T) {
				feat, k := m.runVision(t, m.session(t, "vision_encoder", v), frames)
				if k != 3 {
					t.Fatalf("%d real frames, want 3", k)
				}
				r := m.greedy(t, v, ids, feat, 0, 3)
				t.Logf("tokens %v, top1-top2 gaps %v", r.tokens, r.gaps)
				for _, l := range r.logits {
					for _, x := range l {
						if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
							t.Fatalf("non-finite logit %v", x)
						}
					}
				}
				if v == FP32 {
					ref = r
					return
				}
				// Same weights in every variant: the greedy tokens agree.
				if !slices.Equal(r.tokens, ref.tokens) {
					t.Errorf("%s tokens %v, fp32 %v", v, r.tokens, ref.tokens)
				}
				for s := range r.logits {
					d := maxDiff(r.logits[s], ref.logits[s])
					t.Logf("step %d: max |logit - fp32 logit| = %.2g (fp32 gap %.3g)", s, d, ref.gaps[s])
					if d >= ref.gaps[s]/2 {
						t.Errorf("step %d: %s logits deviate by %.3g, more than half the fp32 top-1/top-2 gap %.3g", s, v, d, ref.gaps[s])
					}
				}
			})
		}
	}
}

func maxDiff(a, b []float32) float32 {
	var d float32
	for i := range a {
		d = max(d, abs32(a[i]-b[i]))
	}
	return d
}

// TestMissingPast calls the decoder without its KV inputs, as the seed
// project did: like the real export, the run fails at the past-length Shape
// node with "Missing Input: past_key_values.0.key".
func TestMissingPast(t *testing.T) {
	m := generated(t, "tiny512")
	testEnv(t)
	for _, v := range Variants() {
		t.Run(v, func(t *testing.T) {
			s, err := ortgo.NewDynamicAdvancedSession(m.path("decoder_model_merged", v),
				[]string{"inputs_embeds", "attention_mask", "position_ids"}, []string{"logits"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Destroy()
			emb := must[*ortgo.Tensor[float32]](t)(ortgo.NewTensor(ortgo.NewShape(1, 2, int64(m.p.hidden)), make([]float32, 2*m.p.hidden)))
			mask := must[*ortgo.Tensor[int64]](t)(ortgo.NewTensor(ortgo.NewShape(1, 2), []int64{1, 1}))
			pos := must[*ortgo.Tensor[int64]](t)(ortgo.NewTensor(ortgo.NewShape(1, 2), []int64{0, 1}))
			defer emb.Destroy()
			defer mask.Destroy()
			defer pos.Destroy()
			err = s.Run([]ortgo.Value{emb, mask, pos}, []ortgo.Value{nil})
			if err == nil {
				t.Fatal("decoder ran without past_key_values, want an error")
			}
			for _, want := range []string{"Missing Input: past_key_values.0.key", "/model/attn_mask_reformat/past_key_subgraph/Shape"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestKVCacheConsistency: logits of the last positions are the same whether
// the prompt is prefilled at once or the last two tokens are decoded one by
// one from the cache (checks RoPE positions, causal mask and past handling),
// and a left-padded batch row gives the logits of the unpadded prompt.
func TestKVCacheConsistency(t *testing.T) {
	m := generated(t, "tiny384")
	embS := m.session(t, "embed_tokens", FP32)
	decS := m.session(t, "decoder_model_merged", FP32)
	V, H := m.tok.vocabSize, m.p.hidden
	ids := []int64{1, 500, 501, 502, 503, 504, 505, 506}
	n := len(ids)
	emb := m.runEmbed(t, embS, ids)
	full := m.decode(t, decS, &kvCache{}, 1, emb, ones(n), seq(0, n))

	cache := &kvCache{}
	m.decode(t, decS, cache, 1, emb[:(n-2)*H], ones(n-2), seq(0, n-2))
	for i := n - 2; i < n; i++ {
		got := m.decode(t, decS, cache, 1, emb[i*H:(i+1)*H], ones(i+1), []int64{int64(i)})
		if d := maxDiff(got, full[i*V:(i+1)*V]); d > 1e-3 {
			t.Errorf("position %d: cached decode differs from full prefill by %g", i, d)
		}
	}

	// Batch of two: row 0 left-padded by 3 with pad id 2, row 1 unpadded.
	pad := 3
	padded := append([]int64{2, 2, 2}, ids[:n-pad]...)
	e0 := m.runEmbed(t, embS, padded)
	batchEmb := append(e0, emb...)
	mask := append(append([]int64{0, 0, 0}, ones(n-pad)...), ones(n)...)
	// transformers.js positions: cumsum(mask)-1, masked positions set to 1.
	pos := append([]int64{1, 1, 1}, seq(0, n-pad)...)
	pos = append(pos, seq(0, n)...)
	logits := m.decode(t, decS, &kvCache{}, 2, batchEmb, mask, pos)
	short := m.decode(t, decS, &kvCache{}, 1, emb[:(n-pad)*H], ones(n-pad), seq(0, n-pad))
	for i := 0; i < n-pad; i++ {
		if d := maxDiff(logits[(pad+i)*V:(pad+i+1)*V], short[i*V:(i+1)*V]); d > 1e-3 {
			t.Errorf("padded row, position %d: differs from unpadded by %g", i, d)
		}
	}
	if d := maxDiff(logits[n*V:], full); d > 1e-3 {
		t.Errorf("unpadded batch row differs from batch-1 run by %g", d)
	}
}

// TestVisionDropsPaddingFrames: all-zero frames (batch padding) produce no
// features, the others are unchanged.
func TestVisionDropsPaddingFrames(t *testing.T) {
	m := generated(t, "tiny384")
	M := m.p.tile
	per := 3 * M * M
	vis := m.session(t, "vision_encoder", FP32)
	frames := testImage(M, M, 4).frames(M) // tile + global = 2 frames
	padded := append(append(append([]float32(nil), frames[:per]...), make([]float32, per)...), frames[per:]...)
	want, k := m.runVision(t, vis, frames)
	got, kp := m.runVision(t, vis, padded)
	if k != 2 || kp != 2 {
		t.Fatalf("frames kept: %d and %d, want 2", k, kp)
	}
	if d := maxDiff(got, want); d > 1e-4 {
		t.Errorf("features with a padding frame differ by %g", d)
	}
}

// TestSensitivity: the greedy tokens depend on the image and its layout, and
// the same input always gives the same tokens.
func TestSensitivity(t *testing.T) {
	m := generated(t, "tiny512")
	M := m.p.tile
	per := 3 * M * M
	vis := m.session(t, "vision_encoder", FP32)
	ids := m.promptIDs(2, 2)
	a := testImage(2*M, 2*M, 1)
	framesA := a.frames(M)
	swapped := append([]float32(nil), framesA...)
	copy(swapped[:per], framesA[per:2*per])
	copy(swapped[per:2*per], framesA[:per])
	featA, _ := m.runVision(t, vis, framesA)
	featA2, _ := m.runVision(t, vis, framesA)
	featB, _ := m.runVision(t, vis, testImage(2*M, 2*M, 2).frames(M))
	featT, _ := m.runVision(t, vis, a.transposed().frames(M))
	featS, _ := m.runVision(t, vis, swapped)
	const steps = 4
	ref := m.greedy(t, FP32, ids, featA, 0, steps)
	t.Logf("image A: tokens %v gaps %v", ref.tokens, ref.gaps)
	if again := m.greedy(t, FP32, ids, featA2, 0, steps); !slices.Equal(again.tokens, ref.tokens) {
		t.Errorf("same image twice: tokens %v then %v", ref.tokens, again.tokens)
	}
	for _, c := range []struct {
		name  string
		feat  []float32
		shift int
	}{
		{"another image", featB, 0},
		{"transposed image", featT, 0},
		{"tiles 1 and 2 swapped", featS, 0},
		{"features merged one token late", featA, 1},
	} {
		r := m.greedy(t, FP32, ids, c.feat, c.shift, steps)
		t.Logf("%s: tokens %v", c.name, r.tokens)
		// A decisive first token may survive a small change; the
		// continuation must not.
		differ := 0
		for i := range r.tokens {
			if r.tokens[i] != ref.tokens[i] {
				differ++
			}
		}
		if differ < steps/2 {
			t.Errorf("%s: tokens %v differ from image A's %v in %d of %d steps, want at least %d", c.name, r.tokens, ref.tokens, differ, steps, steps/2)
		}
	}
}

func TestConfigs(t *testing.T) {
	for _, name := range tinyPresets {
		t.Run(name, func(t *testing.T) {
			m := generated(t, name)
			cfg, err := modelconfig.Load(m.dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			p := m.p
			id := func(s string) int64 { return m.tok.ids[s] }
			checks := []struct {
				field     string
				got, want any
			}{
				{"model_type", cfg.Config.ModelType, "smolvlm"},
				{"image_token_id", cfg.Config.ImageTokenID, id(tokImage)},
				{"scale_factor", cfg.Config.ScaleFactor, p.scale},
				{"text vocab", cfg.Config.TextConfig.VocabSize, m.tok.vocabSize},
				{"kv heads", cfg.Config.TextConfig.NumKeyValueHeads, p.kvHeads},
				{"head_dim", cfg.Config.TextConfig.HeadDimension(), p.headDim},
				{"vision image_size", cfg.Config.VisionConfig.ImageSize, p.tile},
				{"patch", cfg.Config.VisionConfig.PatchSize, p.patch},
				{"image_seq_len", cfg.ImageSeqLen(), p.imageSeqLen()},
				{"max_image_size", cfg.Preprocessor.MaxImageSize.LongestEdge, p.tile},
				{"size", cfg.Preprocessor.Size.LongestEdge, p.longestEdge},
				{"resample", *cfg.Preprocessor.Resample, 1},
				{"eos", fmt.Sprint(cfg.EOSTokenIDs()), fmt.Sprint([]int64{id(tokEndOfUtter), id(tokIMEnd)})},
				{"pad", *cfg.Config.TextConfig.PadTokenID, id(tokIMEnd)},
				{"bos", *cfg.Config.TextConfig.BOSTokenID, id(tokIMStart)},
				{"tokenizer eos", string(cfg.Tokenizer.EOSToken), tokEndOfUtter},
				{"chat template", cfg.ChatTemplate != "", true},
			}
			for _, c := range checks {
				if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
					t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
				}
			}
		})
	}
}

// TestTokenizerChoice writes configs with the default (generated)
// tokenizer and with the real SmolVLM one, and checks the ids and vocab
// size follow the tokenizer shipped.
func TestTokenizerChoice(t *testing.T) {
	cases := []struct {
		name      string
		opt       func(t *testing.T) Options
		wantVocab int
		wantImage int64 // 0: whatever the generated tokenizer says
	}{
		{"default is generated", func(*testing.T) Options { return Options{} }, generatedVocab + 128, 0},
		{"generate overrides path", func(*testing.T) Options {
			return Options{TokenizerPath: "does-not-exist.json", GenerateTokenizer: true}
		}, generatedVocab + 128, 0},
		// SmolVLM's vocabulary and <image> id (spec §1.2).
		{"real", func(t *testing.T) Options { return Options{TokenizerPath: testtok.Path(t)} }, 49280, 49190},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opt := c.opt(t)
			opt.Seed, opt.Variants = 2, []string{Q4}
			dir := t.TempDir()
			if err := Generate(context.Background(), "tiny384", dir, opt); err != nil {
				t.Fatal(err)
			}
			cfg, err := modelconfig.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := loadTokenizer(opt)
			if err != nil {
				t.Fatal(err)
			}
			if tok.vocabSize != c.wantVocab {
				t.Errorf("vocab %d, want %d", tok.vocabSize, c.wantVocab)
			}
			if c.wantImage != 0 && tok.ids[tokImage] != c.wantImage {
				t.Errorf("<image> id %d, want %d", tok.ids[tokImage], c.wantImage)
			}
			if cfg.Config.TextConfig.VocabSize != tok.vocabSize || cfg.Config.ImageTokenID != tok.ids[tokImage] {
				t.Errorf("config vocab %d image id %d, tokenizer has %d and %d",
					cfg.Config.TextConfig.VocabSize, cfg.Config.ImageTokenID, tok.vocabSize, tok.ids[tokImage])
			}
			m := &testModel{dir: dir, p: presets["tiny384"], tok: tok}
			testEnv(t)
			dec := m.session(t, "decoder_model_merged", Q4)
			if got := dec.Outputs()[0].Shape[2]; got != int64(tok.vocabSize) {
				t.Errorf("logits width %d, want %d", got, tok.vocabSize)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	ctx := context.Background()
	if err := Generate(ctx, "nope", t.TempDir(), Options{}); err == nil {
		t.Error("unknown preset accepted")
	}
	if err := Generate(ctx, "tiny512", t.TempDir(), Options{Variants: []string{"int4"}}); err == nil {
		t.Error("unknown variant accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Generate(cctx, "tiny512", t.TempDir(), Options{}); err == nil {
		t.Error("cancelled context: no error")
	}
}
