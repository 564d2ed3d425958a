package decoder

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// load generates tiny512 and opens its decoder of the given variant.
func load(t *testing.T, variant string) (*Decoder, int) {
	t.Helper()
	d, _, h := loadBoth(t, variant, false)
	return d, h
}

// loadBoth generates tiny512 and opens its decoder of the given variant; with
// gqa also its GroupQueryAttention rewrite, with a shared cache.
func loadBoth(t *testing.T, variant string, gqa bool) (orig, rewritten *Decoder, hidden int) {
	t.Helper()
	e := orttest.Env(t)
	dir := t.TempDir()
	so := ort.SessionOptions{IntraOpThreads: 1}
	// " keep": the rewrite also computes the last position's logits only.
	variant, keep := strings.CutSuffix(variant, " keep")
	// " own": the rewrite runs snapvlm's attention kernel.
	variant, own := strings.CutSuffix(variant, " own")
	if v, ok := strings.CutSuffix(variant, " int8"); ok {
		// 4-bit matmuls with int8 activations (accuracy_level 4).
		variant, so.MatMulNBitsAccuracy = v, 4
	}
	if err := testmodel.Generate(context.Background(), "tiny512", dir, testmodel.Options{Variants: []string{variant}, GenerateTokenizer: true}); err != nil {
		t.Fatal(err)
	}
	cfg, err := modelconfig.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.Config.TextConfig
	suffix := map[string]string{"fp32": "", "fp16": "_fp16", "q4": "_q4"}[variant]
	path := filepath.Join(dir, "onnx", "decoder_model_merged"+suffix+".onnx")
	dcfg := Config{Layers: tc.NumHiddenLayers, KVHeads: tc.NumKeyValueHeads, HeadDim: tc.HeadDimension(), Hidden: tc.HiddenSize, Vocab: tc.VocabSize}
	d, err := New(e, path, so, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !gqa {
		return d, nil, tc.HiddenSize
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	shape := onnx.GQAShape{Heads: tc.NumAttentionHeads, KVHeads: tc.NumKeyValueHeads, HeadDim: tc.HeadDimension()}
	if own {
		if ok, err := e.Attention(); !ok {
			t.Fatalf("snapvlm's attention kernel is not registered: %v", err)
		}
		shape.Domain = ort.AttentionDomain
	}
	data, _, err = onnx.FuseGroupQueryAttention(data, shape)
	if err != nil {
		t.Fatal(err)
	}
	if keep {
		if data, err = onnx.KeepLastLogits(data); err != nil {
			t.Fatal(err)
		}
	}
	gqaPath := filepath.Join(dir, "gqa.onnx")
	if err := os.WriteFile(gqaPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dcfg.SharedCache, dcfg.PrefillTogether = true, own
	r, err := New(e, gqaPath, so, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return d, r, tc.HiddenSize
}

// TestTruncateAndGrow: a cache cut back to k tokens (or moved into a larger
// one) continues exactly like a cache that only ever saw those k tokens, for
// the float32 and the float16 cache layouts, and the shared cache of the
// GroupQueryAttention rewrite (whose fresh logits must also be the original
// graph's).
func TestTruncateAndGrow(t *testing.T) {
	for _, variant := range []string{"fp32", "fp16", "fp32 shared"} {
		t.Run(variant, func(t *testing.T) {
			shared := strings.HasSuffix(variant, " shared")
			variant = strings.TrimSuffix(variant, " shared")
			orig, d, h := loadBoth(t, variant, shared)
			if !shared {
				d = orig
			}
			if want := map[string]ort.DType{"fp32": ort.Float32, "fp16": ort.Float16}[variant]; d.KVType() != want {
				t.Fatalf("KV type %s, want %s", d.KVType(), want)
			}
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			embeds := make([]float32, 12*h)
			for i := range embeds {
				embeds[i] = rng.Float32()*2 - 1
			}
			next := embeds[11*h:]
			const k = 7

			ref, err := d.NewState(k+1, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			if _, err := ref.Prefill(ctx, embeds[:k*h]); err != nil {
				t.Fatal(err)
			}
			want, err := ref.Step(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			want = slices.Clone(want)
			if shared {
				if !d.shared {
					t.Fatal("the rewritten decoder does not share its cache")
				}
				o, err := orig.NewState(k+1, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer o.Close()
				if _, err := o.Prefill(ctx, embeds[:k*h]); err != nil {
					t.Fatal(err)
				}
				ow, err := o.Step(ctx, next)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if diff := ow[i] - want[i]; diff > 1e-4 || diff < -1e-4 {
						t.Fatalf("logit %d: %g with the shared cache, %g with the original graph", i, want[i], ow[i])
					}
				}
			}

			cases := []struct {
				name  string
				chunk int
				after func(st *State) error
			}{
				{"truncate", 0, func(st *State) error { return st.Truncate(k) }},
				{"truncate in chunks of 3", 3, func(st *State) error { return st.Truncate(k) }},
				{"truncate then grow", 0, func(st *State) error {
					if err := st.Truncate(k); err != nil {
						return err
					}
					return st.Grow(100)
				}},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					st, err := d.NewState(12, c.chunk)
					if err != nil {
						t.Fatal(err)
					}
					defer st.Close()
					if _, err := st.Prefill(ctx, embeds[:11*h]); err != nil {
						t.Fatal(err)
					}
					if err := c.after(st); err != nil {
						t.Fatal(err)
					}
					if st.Len() != k {
						t.Fatalf("len %d after truncate, want %d", st.Len(), k)
					}
					got, err := st.Step(ctx, next)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if diff := got[i] - want[i]; diff > 1e-4 || diff < -1e-4 {
							t.Fatalf("logit %d: %g after %s, %g fresh", i, got[i], c.name, want[i])
						}
					}
				})
			}

			// A snapshot (of k tokens, or of all 11 restored to k) starts
			// a new cache, of any capacity, that continues like the fresh
			// one; the snapshot outlives its source.
			snaps := []struct {
				name           string
				take, capacity int
				chunk          int
			}{
				{"snapshot k", k, k + 1, 0},
				{"snapshot all, restore k", 11, 40, 3},
			}
			for _, c := range snaps {
				t.Run(c.name, func(t *testing.T) {
					src, err := d.NewState(12, c.chunk)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := src.Prefill(ctx, embeds[:11*h]); err != nil {
						t.Fatal(err)
					}
					snap, err := src.Snapshot(c.take)
					src.Close()
					if err != nil {
						t.Fatal(err)
					}
					if snap.Len() != c.take {
						t.Fatalf("snapshot holds %d tokens, want %d", snap.Len(), c.take)
					}
					size := map[ort.DType]int64{ort.Float32: 4, ort.Float16: 2}[d.KVType()]
					if want := int64(2*d.cfg.Layers*d.cfg.KVHeads*d.cfg.HeadDim*c.take) * size; snap.Bytes() != want {
						t.Errorf("snapshot of %d tokens takes %d bytes, want %d", c.take, snap.Bytes(), want)
					}
					st, err := d.Restore(snap, k, c.capacity, c.chunk)
					if err != nil {
						t.Fatal(err)
					}
					defer st.Close()
					if st.Len() != k || st.Cap() != c.capacity {
						t.Fatalf("restored len %d cap %d, want %d and %d", st.Len(), st.Cap(), k, c.capacity)
					}
					got, err := st.Step(ctx, next)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if diff := got[i] - want[i]; diff > 1e-4 || diff < -1e-4 {
							t.Fatalf("logit %d: %g after %s, %g fresh", i, got[i], c.name, want[i])
						}
					}
				})
			}
		})
	}
}

func TestStateErrors(t *testing.T) {
	d, h := load(t, "q4")
	ctx := context.Background()
	st, err := d.NewState(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"ragged embeddings", func() error { _, err := st.Prefill(ctx, make([]float32, h+1)); return err }, "not whole rows"},
		{"over capacity", func() error { _, err := st.Prefill(ctx, make([]float32, 5*h)); return err }, "exceed the cache of 4"},
		{"step width", func() error { _, err := st.Step(ctx, make([]float32, h-1)); return err }, "want"},
		{"truncate beyond", func() error { return st.Truncate(1) }, "cannot keep 1 of 0"},
		{"zero capacity", func() error { _, err := d.NewState(0, 0); return err }, "must be positive"},
		{"snapshot beyond", func() error { _, err := st.Snapshot(1); return err }, "cannot snapshot 1 of 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
