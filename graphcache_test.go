package snapvlm

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// graphOutputs runs every graph of m on fixed inputs: vision features of
// two synthetic tiles, then the decoder's logits over a two-part prefill
// and greedy steps (each step's token embedded by the model).
func graphOutputs(t *testing.T, m *Model) (feats []float32, logits [][]float32) {
	t.Helper()
	ctx := context.Background()
	tile := m.imgOpts.TileSize
	pixels := make([]float32, 2*3*tile*tile)
	for i := range pixels {
		pixels[i] = float32(math.Sin(float64(i)*0.013)) * 0.9
	}
	feats, err := m.vis.Encode(ctx, pixels, 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = int64((i*131 + 7) % m.dec.Vocab())
	}
	embeds, err := m.emb.Embed(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.dec.NewState(len(ids)+8, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := len(embeds) / len(ids)
	if _, err := st.Prefill(ctx, embeds[:12*h]); err != nil {
		t.Fatal(err)
	}
	l, err := st.Prefill(ctx, embeds[12*h:])
	for step := 0; ; step++ {
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, append([]float32(nil), l...))
		if step == 6 {
			return feats, logits
		}
		e, eerr := m.emb.Embed(ctx, []int64{argmax(l)})
		if eerr != nil {
			t.Fatal(eerr)
		}
		l, err = st.Step(ctx, e) // checked at the top of the loop
	}
}

// sameBits reports the first index where got and want differ bit for bit.
func sameBits(got, want []float32) (int, bool) {
	if len(got) != len(want) {
		return min(len(got), len(want)), false
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i, false
		}
	}
	return 0, true
}

// TestGraphCacheSameOutputs: a model loaded from the optimised graphs an
// earlier load saved (optimisation off, weights mapped) computes the same
// vision features and logits, bit for bit, as one whose graphs ONNX
// Runtime optimises from the files (NoGraphCache); a truncated copy is
// reported in FileReasons, not used, and made again. The same holds for a
// model whose weights are in external data files.
func TestGraphCacheSameOutputs(t *testing.T) {
	t.Run("inline weights", func(t *testing.T) { testGraphCache(t, modelDir(t, "tiny512"), Options{}) })
	t.Run("external data", func(t *testing.T) {
		dir := t.TempDir()
		if err := testmodel.Generate(context.Background(), "tiny512", dir, testmodel.Options{Seed: 1, Variants: []string{"q4"}, ExternalDataBytes: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "onnx", "decoder_model_merged_q4.onnx_data")); err != nil {
			t.Fatalf("the test model has no external data: %v", err)
		}
		// The attention rewrite is not made for external data (a warning).
		testGraphCache(t, dir, Options{PlainAttention: true})
	})
}

func testGraphCache(t *testing.T, dir string, base Options) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	rewritten, err := ort.RewrittenDir()
	if err != nil {
		t.Fatal(err)
	}
	load := func(opts Options) *Model {
		t.Helper()
		opts.PlainAttention = base.PlainAttention
		m, err := Load(context.Background(), dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	ref := load(Options{NoGraphCache: true})
	wantFeats, wantLogits := graphOutputs(t, ref)
	graphs := []string{GraphVision, GraphEmbed, GraphDecoder}
	fromCache := func(m *Model, g string) bool { return strings.Contains(m.FileReasons()[g], graphCacheNote) }
	for _, g := range graphs {
		if fromCache(ref, g) {
			t.Fatalf("NoGraphCache: %s loaded from the cache (%s)", g, ref.FileReasons()[g])
		}
	}

	compare := func(what string, m *Model, wantCached bool) {
		t.Helper()
		for _, g := range graphs {
			why := m.FileReasons()[g]
			if fromCache(m, g) != wantCached || strings.Contains(why, "warning") {
				t.Fatalf("%s: %s: %q (want from the cache: %v, no warning)", what, g, why, wantCached)
			}
		}
		feats, logits := graphOutputs(t, m)
		if i, ok := sameBits(feats, wantFeats); !ok {
			t.Fatalf("%s: vision feature %d differs from the uncached model's", what, i)
		}
		for s := range wantLogits {
			if i, ok := sameBits(logits[s], wantLogits[s]); !ok {
				t.Fatalf("%s: logit %d of step %d differs from the uncached model's", what, i, s)
			}
		}
	}
	compare("first load", load(Options{}), false)
	copies, err := filepath.Glob(filepath.Join(rewritten, "*"+filepath.Base(dtypeFile(t, ref, GraphDecoder))))
	if err != nil {
		t.Fatal(err)
	}
	compare("second load", load(Options{}), true)

	// Truncate the weights of the decoder's optimised copy: the next load
	// warns, loads the file, and saves the copy again for the load after.
	var data string
	for _, c := range copies {
		if _, err := os.Stat(c + ort.DataSuffix); err == nil {
			data = c + ort.DataSuffix
		}
	}
	if data == "" {
		t.Fatalf("no optimised copy of the decoder (with its data file) among %v", copies)
	}
	st, _ := os.Stat(data)
	if err := os.Truncate(data, st.Size()*2/3); err != nil {
		t.Fatal(err)
	}
	m := load(Options{})
	if why := m.FileReasons()[GraphDecoder]; !strings.Contains(why, "warning") || !strings.Contains(why, "not usable") || fromCache(m, GraphDecoder) {
		t.Fatalf("truncated copy: decoder reason %q, want a warning that the copy is not usable", why)
	}
	if i, ok := sameBits(func() []float32 { _, l := graphOutputs(t, m); return l[len(l)-1] }(), wantLogits[len(wantLogits)-1]); !ok {
		t.Fatalf("truncated copy: logit %d differs", i)
	}
	compare("after the truncated copy", load(Options{}), true)
}

// dtypeFile is the file of graph g in m, as loaded from the model
// directory (before rewrites).
func dtypeFile(t *testing.T, m *Model, g string) string {
	t.Helper()
	return ort.SourceBase(m.Files()[g])
}
