package snapvlm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// requireORT skips when ONNX Runtime is missing, unless `make test` asks for
// it (SNAPVLM_REQUIRE_ORT=1), where a missing library is a failure.
func requireORT(t testing.TB) {
	t.Helper()
	orttest.Env(t)
}

// testModels generates each preset once per test binary.
var testModels struct {
	sync.Mutex
	dirs map[string]string
	root string
}

// examples is the model generated for the examples, removed at the end.
var examples string

func TestMain(m *testing.M) {
	// Loads write rewritten decoders to the user cache dir: keep the test
	// models' ones out of the user's, once ONNX Runtime (found through
	// that dir) is located.
	cache, err := os.MkdirTemp("", "snapvlm-cache-")
	if err == nil {
		if lib, err := ort.FindLibrary(""); err == nil && os.Getenv("SNAPVLM_ORT_LIB") == "" {
			os.Setenv("SNAPVLM_ORT_LIB", lib)
		}
		os.Setenv("XDG_CACHE_HOME", cache)
	}
	// The examples (package snapvlm_test) load the model this names.
	if os.Getenv("SNAPVLM_EXAMPLE_MODEL") == "" {
		dir, err := os.MkdirTemp("", "snapvlm-example-")
		if err == nil {
			examples = dir
			err = testmodel.Generate(context.Background(), "tiny512", dir, testmodel.Options{Seed: 1, Variants: []string{"q4"}})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "generating the examples' model:", err)
			os.Exit(1)
		}
		os.Setenv("SNAPVLM_EXAMPLE_MODEL", dir)
	}
	code := m.Run()
	if examples != "" {
		os.RemoveAll(examples)
	}
	if testModels.root != "" {
		os.RemoveAll(testModels.root)
	}
	if cache != "" {
		os.RemoveAll(cache)
	}
	os.Exit(code)
}

func modelDir(t testing.TB, preset string) string {
	t.Helper()
	requireORT(t)
	testModels.Lock()
	defer testModels.Unlock()
	if d, ok := testModels.dirs[preset]; ok {
		return d
	}
	if testModels.root == "" {
		root, err := os.MkdirTemp("", "snapvlm-models-")
		if err != nil {
			t.Fatal(err)
		}
		testModels.root, testModels.dirs = root, map[string]string{}
	}
	// "<preset>+all" has every variant; plain presets the float and 4-bit
	// ones, so that their default (q4) stays exact against fp32.
	variants := append(testmodel.Variants(), testmodel.Q4F16)
	name, all := strings.CutSuffix(preset, "+all")
	dir := filepath.Join(testModels.root, name)
	if all {
		variants = append(testmodel.Variants(), testmodel.ExtraVariants()...)
		dir += "-all" // transformers.js takes a '+' in a path for a repo id
	}
	if err := testmodel.Generate(context.Background(), name, dir, testmodel.Options{Seed: 1, Variants: variants}); err != nil {
		t.Fatalf("generating %s: %v", preset, err)
	}
	testModels.dirs[preset] = dir
	return dir
}

func loadModel(t testing.TB, preset string, opts Options) *Model {
	t.Helper()
	m, err := Load(context.Background(), modelDir(t, preset), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// pngImage draws a w×h picture whose content depends on kind; transposed
// swaps its axes.
func pngImage(t testing.TB, w, h int, kind int, transposed bool) *Image {
	t.Helper()
	if transposed {
		w, h = h, w
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			xx, yy := x, y
			if transposed {
				xx, yy = y, x
			}
			c := color.RGBA{uint8(xx * 255 / max(w, h)), uint8(yy * 255 / max(w, h)), uint8((xx*yy + kind*97) % 256), 255}
			if kind == 1 && (xx/40+yy/40)%2 == 0 {
				c = color.RGBA{250, 250, 40, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return &Image{Name: "test.png", Data: buf.Bytes()}
}

func greedy(t testing.TB, m *Model, req Request) *Result {
	t.Helper()
	if req.MaxNewTokens == 0 {
		req.MaxNewTokens = 8
	}
	res, err := m.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestGenerateVariantsAndFamilies(t *testing.T) {
	img := pngImage(t, 300, 200, 0, false)
	cases := []struct {
		preset, dtype string
		noSplit       bool
		wantTiles     int
		wantImgTok    int
	}{
		// 300x200 -> 2048x1366 -> 2048x1536: 3x4 tiles + global.
		{"tiny512", "fp32", false, 13, 13 * 64},
		{"tiny512", "q4", false, 13, 13 * 64},
		{"tiny512", "fp16", false, 13, 13 * 64},
		{"tiny512", "fp32", true, 1, 64},
		// 300x200 -> 1536x1024 -> 1536x1152: 3x4 tiles + global, 81 per tile.
		{"tiny384", "fp32", false, 13, 13 * 81},
		{"tiny384", "q4", true, 1, 81},
		// The exports' other quantizations: every one loads and runs on
		// the CPU provider (ONNX Runtime 1.30). Their weights are not exact
		// in 8 bits or NF4, so their tokens are not compared with fp32
		// here; TestAgainstTransformersJS pins them.
		{"tiny512+all", "int8", false, 13, 13 * 64},
		{"tiny512+all", "uint8", false, 13, 13 * 64},
		{"tiny512+all", "quantized", false, 13, 13 * 64},
		{"tiny512+all", "bnb4", false, 13, 13 * 64},
		{"tiny384+all", "int8", false, 13, 13 * 81},
	}
	var fp32Tokens []int64
	for _, c := range cases {
		t.Run(c.preset+"/"+c.dtype+map[bool]string{true: "/nosplit"}[c.noSplit], func(t *testing.T) {
			m := loadModel(t, c.preset, Options{Dtype: c.dtype})
			res := greedy(t, m, Request{Messages: []Message{UserMessage("Can you describe this image?", img)}, GenerateOptions: GenerateOptions{NoSplit: c.noSplit}})
			if res.Tiles != c.wantTiles || res.ImageTokens != c.wantImgTok {
				t.Errorf("tiles %d, image tokens %d; want %d, %d", res.Tiles, res.ImageTokens, c.wantTiles, c.wantImgTok)
			}
			if len(res.Tokens) == 0 || res.FinishReason == "" {
				t.Fatalf("no tokens: %+v", res)
			}
			if res.Timings.Prefill <= 0 || res.Timings.FirstToken <= 0 || res.Timings.Vision <= 0 {
				t.Errorf("timings not measured: %+v", res.Timings)
			}
			// The variants hold the same function (weights exact in 4 bits
			// and float16), so greedy decoding agrees.
			if c.preset == "tiny512" && !c.noSplit && slices.Contains([]string{"fp32", "q4", "fp16"}, c.dtype) {
				if fp32Tokens == nil {
					fp32Tokens = res.Tokens
				} else if !slices.Equal(res.Tokens, fp32Tokens) {
					t.Errorf("%s tokens %v differ from fp32 %v", c.dtype, res.Tokens, fp32Tokens)
				}
			}
		})
	}
}

// TestCacheMatchesUncached checks the KV-cache loop against recomputing the
// whole sequence without a cache at every step: the independent forward.
func TestCacheMatchesUncached(t *testing.T) {
	m := loadModel(t, "tiny512", Options{Dtype: "fp32"})
	img := pngImage(t, 200, 120, 1, false)
	req := Request{Messages: []Message{UserMessage("What is this?", img)}, GenerateOptions: GenerateOptions{MaxNewTokens: 6, NoSplit: true}}
	res := greedy(t, m, req)
	ctx := context.Background()
	p, err := m.prepare(ctx, req, &Result{})
	if err != nil {
		t.Fatal(err)
	}
	ids := slices.Clone(p.ids)
	embeds := slices.Clone(p.embeds)
	h := m.emb.Hidden()
	for i, want := range res.Tokens {
		st, err := m.dec.NewState(len(ids), 0)
		if err != nil {
			t.Fatal(err)
		}
		logits, err := st.Prefill(ctx, embeds)
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := int64(slices.Index(logits, slices.Max(logits)))
		if got != want {
			t.Fatalf("token %d: cached loop gave %d, uncached forward %d", i, want, got)
		}
		e, err := m.emb.Embed(ctx, []int64{got})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got)
		embeds = append(embeds, e[:h]...)
	}
}

func TestPrefillChunksAgree(t *testing.T) {
	img := pngImage(t, 300, 200, 0, false)
	req := Request{Messages: []Message{UserMessage("Describe.", img)}}
	var want []int64
	for _, chunk := range []int{4096, 100, 7} {
		m := loadModel(t, "tiny512", Options{Dtype: "fp32", PrefillChunk: chunk})
		got := greedy(t, m, req).Tokens
		if want == nil {
			want = got
		} else if !slices.Equal(got, want) {
			t.Errorf("chunk %d: tokens %v, want %v", chunk, got, want)
		}
	}
}

// TestSensitivity: the test model is built so that a wrong pixel layout,
// swapped tiles or a merge shifted by one token changes the answer; this is
// what makes the other tests able to catch those bugs.
func TestSensitivity(t *testing.T) {
	m := loadModel(t, "tiny512", Options{Dtype: "fp32"})
	ctx := context.Background()
	img := pngImage(t, 300, 200, 0, false)
	req := Request{Messages: []Message{UserMessage("Describe.", img)}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}
	base := greedy(t, m, req).Tokens

	run := func(t *testing.T, mutate func(feats []float32, ids []int64, embeds []float32) ([]float32, error)) []int64 {
		t.Helper()
		p, err := m.prepare(ctx, req, &Result{})
		if err != nil {
			t.Fatal(err)
		}
		feats, _, _, err := m.imageFeatures(ctx, []*Image{img}, req, &Result{})
		if err != nil {
			t.Fatal(err)
		}
		embeds, err := mutate(slices.Clone(feats), p.ids, p.embeds)
		if err != nil {
			t.Fatal(err)
		}
		res := &Result{}
		kv, err := m.answer(ctx, req.GenerateOptions, &prepared{held: held{ids: p.ids}, embeds: embeds}, res, time.Now(), nil, nil, false)
		kv.drop()
		if err != nil {
			t.Fatal(err)
		}
		return res.Tokens
	}
	h, n := m.emb.Hidden(), m.seqLen
	same := run(t, func(f []float32, ids []int64, e []float32) ([]float32, error) {
		return e, embed.Merge(e, ids, m.cfg.Config.ImageTokenID, f, h)
	})
	if !slices.Equal(same, base) {
		t.Fatalf("re-merging the same features changed the answer: %v vs %v", same, base)
	}
	cases := []struct {
		name   string
		mutate func(f []float32, ids []int64, e []float32) ([]float32, error)
	}{
		{"swapped tiles", func(f []float32, ids []int64, e []float32) ([]float32, error) {
			a, b := f[:n*h], f[n*h:2*n*h]
			tmp := slices.Clone(a)
			copy(a, b)
			copy(b, tmp)
			return e, embed.Merge(e, ids, m.cfg.Config.ImageTokenID, f, h)
		}},
		{"merge shifted by one token", func(f []float32, ids []int64, e []float32) ([]float32, error) {
			img := m.cfg.Config.ImageTokenID
			shifted := make([]int64, len(ids))
			for i, id := range ids {
				if id == img {
					shifted[i+1] = img
				}
			}
			return e, embed.Merge(e, shifted, img, f, h)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := run(t, c.mutate); slices.Equal(got, base) {
				t.Errorf("answer unchanged: %v", got)
			}
		})
	}
	t.Run("transposed image", func(t *testing.T) {
		tr := pngImage(t, 300, 200, 0, true)
		got := greedy(t, m, Request{Messages: []Message{UserMessage("Describe.", tr)}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}).Tokens
		if slices.Equal(got, base) {
			t.Errorf("answer unchanged: %v", got)
		}
	})
	t.Run("other image", func(t *testing.T) {
		other := pngImage(t, 300, 200, 1, false)
		got := greedy(t, m, Request{Messages: []Message{UserMessage("Describe.", other)}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}).Tokens
		if slices.Equal(got, base) {
			t.Errorf("answer unchanged: %v", got)
		}
	})
}

func TestTextOnlyAndTwoImages(t *testing.T) {
	m := loadModel(t, "tiny512", Options{TextOnly: true})
	if _, ok := m.Files()[GraphVision]; ok || m.vis != nil {
		t.Fatal("text-only load opened the vision encoder")
	}
	res := greedy(t, m, Request{Messages: []Message{UserMessage("Hello there")}})
	if res.ImageTokens != 0 || len(res.Tokens) == 0 {
		t.Fatalf("text-only result %+v", res)
	}
	_, err := m.Generate(context.Background(), Request{Messages: []Message{UserMessage("x", pngImage(t, 10, 10, 0, false))}}, nil)
	if err == nil || !strings.Contains(err.Error(), "text-only") {
		t.Fatalf("image on a text-only model: %v", err)
	}

	full := loadModel(t, "tiny512", Options{})
	a, b := pngImage(t, 300, 200, 0, false), pngImage(t, 100, 100, 1, false)
	two := greedy(t, full, Request{Messages: []Message{UserMessage("Compare.", a, b)}, GenerateOptions: GenerateOptions{NoSplit: true}})
	if two.Tiles != 2 || two.ImageTokens != 128 || len(two.Images) != 2 {
		t.Fatalf("two images: tiles %d image tokens %d images %d", two.Tiles, two.ImageTokens, len(two.Images))
	}
	swapped := greedy(t, full, Request{Messages: []Message{UserMessage("Compare.", b, a)}, GenerateOptions: GenerateOptions{NoSplit: true}})
	if slices.Equal(two.Tokens, swapped.Tokens) {
		t.Errorf("image order does not matter: %v", two.Tokens)
	}
}

func TestFeatureCacheAndConcurrency(t *testing.T) {
	m := loadModel(t, "tiny512", Options{})
	img := pngImage(t, 300, 200, 0, false)
	req := Request{Messages: []Message{UserMessage("Describe.", img)}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}
	first := greedy(t, m, req)
	if first.Images[0].Cached {
		t.Fatal("first use of an image reported cached")
	}
	second := greedy(t, m, req)
	if !second.Images[0].Cached || second.Timings.Vision != 0 {
		t.Fatalf("second use: cached=%v vision=%s", second.Images[0].Cached, second.Timings.Vision)
	}
	if !slices.Equal(first.Tokens, second.Tokens) {
		t.Fatalf("cached features changed the answer: %v vs %v", first.Tokens, second.Tokens)
	}
	// Several goroutines on one Model give the sequential answers.
	other := Request{Messages: []Message{UserMessage("Hi")}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}
	want := greedy(t, m, other).Tokens
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, w := req, first.Tokens
			if i%2 == 1 {
				r, w = other, want
			}
			res, err := m.Generate(context.Background(), r, nil)
			if err == nil && !slices.Equal(res.Tokens, w) {
				err = errors.New("concurrent answer differs")
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestCancelAndStop(t *testing.T) {
	m := loadModel(t, "tiny512", Options{})
	req := Request{Messages: []Message{UserMessage("Tell me a story.")}, GenerateOptions: GenerateOptions{MaxNewTokens: 40}}
	// The callback receives every token, in order, with the text that
	// makes up the answer.
	var streamed []int64
	var text strings.Builder
	full, err := m.Generate(context.Background(), req, func(tok Token) error {
		streamed = append(streamed, tok.ID)
		text.WriteString(tok.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(streamed, full.Tokens) || text.String() != full.Text {
		t.Fatalf("streamed ids %v text %q; result ids %v text %q", streamed, text.String(), full.Tokens, full.Text)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pieces := 0
	res, err := m.Generate(ctx, req, func(Token) error {
		pieces++
		if pieces == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || res == nil {
		t.Fatalf("after cancel: %v, %v; want the partial result and context.Canceled", res, err)
	}
	if res.FinishReason != FinishCancelled || len(res.Tokens) > 3 {
		t.Fatalf("after cancel: finish %s, %d tokens (want cancelled within one step)", res.FinishReason, len(res.Tokens))
	}
	// Cancelled before generation starts (here: before the image is
	// encoded): a cancelled result, the context's error, no tokens.
	done, stop := context.WithCancel(context.Background())
	stop()
	early, err := m.Generate(done, Request{Messages: []Message{UserMessage("x", pngImage(t, 64, 48, 1, false))}}, nil)
	if !errors.Is(err, context.Canceled) || early == nil || early.FinishReason != FinishCancelled || len(early.Tokens) != 0 {
		t.Fatalf("cancelled before start: %+v, %v", early, err)
	}
	again := greedy(t, m, req)
	if !slices.Equal(again.Tokens, full.Tokens) {
		t.Fatal("the model answered differently after a cancelled generation")
	}
	// A stop string taken from the full answer ends the text before it.
	if len(full.Text) > 6 {
		stopAt := full.Text[len(full.Text)/2:][:3]
		res := greedy(t, m, Request{Messages: req.Messages, GenerateOptions: GenerateOptions{MaxNewTokens: 40, Stop: []string{stopAt}}})
		if res.FinishReason != FinishStop || strings.Contains(res.Text, stopAt) || !strings.HasPrefix(full.Text, res.Text) {
			t.Errorf("stop %q: finish %s text %q (full %q)", stopAt, res.FinishReason, res.Text, full.Text)
		}
	}
	// A stop string that never completes holds back the end of the answer
	// while it could still match; the held text is released at the end.
	if len(full.Text) < 2 {
		t.Fatalf("answer too short for the stop-string checks: %q", full.Text)
	}
	tail := full.Text[len(full.Text)-2:] + "\x00never"
	held := greedy(t, m, Request{Messages: req.Messages, GenerateOptions: GenerateOptions{MaxNewTokens: 40, Stop: []string{tail}}})
	if held.Text != full.Text || held.FinishReason != full.FinishReason {
		t.Errorf("with an unmatched stop string: %q (%s), want %q (%s)", held.Text, held.FinishReason, full.Text, full.FinishReason)
	}
	// An error from the callback stops generation and is returned.
	boom := errors.New("client went away")
	if _, err := m.Generate(context.Background(), req, func(Token) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
}

func TestChatKeepsImages(t *testing.T) {
	m := loadModel(t, "tiny512", Options{})
	chat := m.NewChat()
	img := pngImage(t, 300, 200, 0, false)
	r1, err := chat.Send(context.Background(), UserMessage("What is this?", img), GenerateOptions{MaxNewTokens: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := chat.Send(context.Background(), UserMessage("And the colours?"), GenerateOptions{MaxNewTokens: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2.ImageTokens != r1.ImageTokens || len(r2.Images) != 1 || !r2.Images[0].Cached {
		t.Fatalf("second turn: image tokens %d (first %d), images %+v", r2.ImageTokens, r1.ImageTokens, r2.Images)
	}
	if len(r2.PromptTokens) <= len(r1.PromptTokens)+len(r1.Tokens) {
		t.Fatalf("second prompt (%d tokens) does not hold the first turn (%d + %d)", len(r2.PromptTokens), len(r1.PromptTokens), len(r1.Tokens))
	}
	h := chat.History()
	if len(h) != 4 || h[1].Role != Assistant {
		t.Fatalf("history %+v", h)
	}
	// The second turn reused the first turn's cache and still answers as a
	// fresh generation over the whole history does.
	if r1.ReusedTokens != 0 || r2.ReusedTokens < len(r1.PromptTokens) {
		t.Errorf("reused tokens: first turn %d, second %d (first prompt %d)", r1.ReusedTokens, r2.ReusedTokens, len(r1.PromptTokens))
	}
	fresh := greedy(t, m, Request{Messages: h[:3], GenerateOptions: GenerateOptions{MaxNewTokens: 5}})
	if !slices.Equal(fresh.Tokens, r2.Tokens) || !slices.Equal(fresh.PromptTokens, r2.PromptTokens) {
		t.Errorf("second turn with reused cache %v, fresh %v", r2.Tokens, fresh.Tokens)
	}
	// A new image in a later turn works, and the cache keeps serving.
	r3, err := chat.Send(context.Background(), UserMessage("Now this one.", pngImage(t, 120, 90, 1, false)), GenerateOptions{MaxNewTokens: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh3 := greedy(t, m, Request{Messages: chat.History()[:5], GenerateOptions: GenerateOptions{MaxNewTokens: 5}})
	if !slices.Equal(fresh3.Tokens, r3.Tokens) || r3.ReusedTokens == 0 {
		t.Errorf("third turn %v (reused %d), fresh %v", r3.Tokens, r3.ReusedTokens, fresh3.Tokens)
	}
	chat.Reset()
	if len(chat.History()) != 0 {
		t.Fatal("reset kept history")
	}
	r4, err := chat.Send(context.Background(), UserMessage("Hello"), GenerateOptions{MaxNewTokens: 3}, nil)
	if err != nil || r4.ReusedTokens != 0 {
		t.Fatalf("after reset: %v, reused %d", err, r4.ReusedTokens)
	}
}

func TestLoadErrors(t *testing.T) {
	src := modelDir(t, "tiny512")
	cfg, err := modelconfig.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	imageID := cfg.Config.ImageTokenID // whichever tokenizer the model ships
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		opts Options
		want []string
	}{
		{"missing variant", nil, Options{Dtype: "int8"}, []string{"no int8 variant", "variants present: fp16, fp32, q4, q4f16"}},
		{"unknown dtype", nil, Options{Dtype: "int3"}, []string{"unknown dtype \"int3\""}},
		{"unknown cache type", nil, Options{KVCache: "f8"}, []string{"KV cache type \"f8\"", "want f16, f32 or auto"}},
		{"kv heads disagree", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), `"num_key_value_heads": 2`, `"num_key_value_heads": 5`)
		}, Options{}, []string{"decoder_model_merged", "num_key_value_heads is 5"}},
		{"layers disagree", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), `"num_hidden_layers": 2,`, `"num_hidden_layers": 3,`)
		}, Options{}, []string{"past_key_values.2.key", "num_hidden_layers is 3"}},
		{"missing config", func(_ *testing.T, dir string) { os.Remove(filepath.Join(dir, "config.json")) }, Options{}, []string{"config.json"}},
		{"missing graph", func(_ *testing.T, dir string) {
			files, _ := filepath.Glob(filepath.Join(dir, "onnx", "embed_tokens*.onnx"))
			for _, f := range files {
				os.Remove(f)
			}
		}, Options{}, []string{"embed_tokens"}},
		{"image token disagrees", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), fmt.Sprintf(`"image_token_id": %d`, imageID), fmt.Sprintf(`"image_token_id": %d`, imageID-1))
		}, Options{}, []string{fmt.Sprintf("image_token_id is %d", imageID-1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, src)
			if c.edit != nil {
				c.edit(t, dir)
			}
			m, err := Load(context.Background(), dir, c.opts)
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func editJSON(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q", path, old)
	}
	os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		// Hard links keep the copies cheap; edits replace whole files.
		if strings.HasSuffix(p, ".json") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		return os.Link(p, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestDecoderInt8 checks that the int8-activation option reaches ONNX
// Runtime: the logits change, a little. (Greedy answers can differ at near
// ties; that is why the option is off by default.)
func TestDecoderInt8(t *testing.T) {
	exact := loadModel(t, "tiny512", Options{Dtype: "q4", PlainAttention: true})
	// The rewritten decoder is cached under the user cache dir: keep this
	// test's copies out of the real one.
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	rewritten := func() []string {
		files, _ := filepath.Glob(filepath.Join(cache, "snapvlm", "rewritten", "*.onnx"))
		return files
	}
	// Without the attention rewrite (a file of its own, and not made for
	// models with external data) and the optimised graphs (files of their
	// own), so that only the int8 rewrite differs.
	fast := loadModel(t, "tiny512", Options{Dtype: "q4", DecoderInt8: true, PlainAttention: true, NoGraphCache: true})
	if n := len(rewritten()); n != 1 {
		t.Fatalf("%d rewritten files cached, want 1", n)
	}
	again := loadModel(t, "tiny512", Options{Dtype: "q4", DecoderInt8: true, PlainAttention: true, NoGraphCache: true})
	if n := len(rewritten()); n != 1 || again.Files()[GraphDecoder] != fast.Files()[GraphDecoder] {
		t.Fatalf("a second load rewrote again (%d files)", n)
	}
	ctx := context.Background()
	req := Request{Messages: []Message{UserMessage("Hello, who are you?")}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}
	p, err := exact.prepare(ctx, req, &Result{})
	if err != nil {
		t.Fatal(err)
	}
	logits := func(m *Model) []float32 {
		st, err := m.dec.NewState(len(p.ids), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l, err := st.Prefill(ctx, p.embeds)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(l)
	}
	a, b := logits(exact), logits(fast)
	var maxDiff, maxAbs float64
	for i := range a {
		maxDiff = max(maxDiff, math.Abs(float64(a[i]-b[i])))
		maxAbs = max(maxAbs, math.Abs(float64(a[i])))
	}
	if maxDiff == 0 {
		t.Fatal("int8 activations left the logits bit-identical: the option did not reach the MatMulNBits nodes")
	}
	if maxDiff > 0.05*maxAbs {
		t.Fatalf("int8 logits differ by %g (logits up to %g)", maxDiff, maxAbs)
	}
	t.Logf("max logit difference %g (max |logit| %g)", maxDiff, maxAbs)

	// A model whose weights live in external data files loads from memory
	// with the rewrite and still finds them.
	dir := t.TempDir()
	if err := testmodel.Generate(ctx, "tiny512", dir, testmodel.Options{Seed: 1, Variants: []string{"q4"}, ExternalDataBytes: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "onnx", "decoder_model_merged_q4.onnx_data")); err != nil {
		t.Fatalf("the test model has no external data: %v", err)
	}
	ext, err := Load(context.Background(), dir, Options{DecoderInt8: true, PlainAttention: true, NoGraphCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	if got := logits(ext); !slices.Equal(got, b) {
		t.Error("the external-data model gives other logits than the same weights inline")
	}
	if n := len(rewritten()); n != 1 {
		t.Errorf("the external-data model was cached away from its data files (%d files)", n)
	}
}

// TestFloat16IO runs a q4f16 model whose embeddings, logits, image
// features and cache are float16 at the graph boundaries: the engine's
// float16 conversions must give the answer of the float32-boundary q4 model
// (the test weights are exact in float16; the gaps between the top logits
// are far wider than float16 rounding).
func TestFloat16IO(t *testing.T) {
	dir := modelDir(t, "tiny512")
	half, err := Load(context.Background(), dir, Options{Dtype: "q4f16"})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if half.dec.KVType() != ort.Float16 {
		t.Fatalf("q4f16 cache is %s", half.dec.KVType())
	}
	full, err := Load(context.Background(), dir, Options{Dtype: "q4"})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	img := pngImage(t, 300, 200, 0, false)
	for _, req := range []Request{
		{Messages: []Message{UserMessage("Describe.", img)}, GenerateOptions: GenerateOptions{MaxNewTokens: 10}},
		{Messages: []Message{UserMessage("Hello there")}, GenerateOptions: GenerateOptions{MaxNewTokens: 10}},
	} {
		h, f := greedy(t, half, req), greedy(t, full, req)
		if !slices.Equal(h.Tokens, f.Tokens) {
			t.Errorf("q4f16 %v, q4 %v", h.Tokens, f.Tokens)
		}
	}
	// Chat reuse truncates a float16 cache too.
	chat := half.NewChat()
	if _, err := chat.Send(context.Background(), UserMessage("What is this?", img), GenerateOptions{MaxNewTokens: 4}, nil); err != nil {
		t.Fatal(err)
	}
	r2, err := chat.Send(context.Background(), UserMessage("More?"), GenerateOptions{MaxNewTokens: 4}, nil)
	if err != nil || r2.ReusedTokens == 0 {
		t.Fatalf("second turn: reused %v, %v", r2, err)
	}
	fresh := greedy(t, half, Request{Messages: chat.History()[:3], GenerateOptions: GenerateOptions{MaxNewTokens: 4}})
	if !slices.Equal(fresh.Tokens, r2.Tokens) {
		t.Errorf("reused float16 cache %v, fresh %v", r2.Tokens, fresh.Tokens)
	}
}
