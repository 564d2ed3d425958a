package snapvlm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// GQARewriteName names the decoder's GroupQueryAttention rewrite in the
// rewritten-file cache key; it changes whenever onnx.FuseGroupQueryAttention
// or onnx.KeepLastLogits or onnx.FuseIntegerMatMuls change what they write
// (v2: the head computes the last row of logits only; v3: the matmuls
// reading one activation run as one DynamicQuantizeMatMul or MatMulNBits).
const GQARewriteName = "decoder-gqa-v3"

// gqaProbeMaxDelta is the largest |Δlogit|, relative to the probe's largest
// |logit|, the GroupQueryAttention rewrite may differ from the original by
// (both compute in float32; only the order of the sums differs).
const gqaProbeMaxDelta = 1e-3

// gqaProbeMaxDeltaQuantized is the limit for a decoder that quantizes its
// activations at run time (int8, uint8, quantized): there a difference in
// the last bits of an attention output can move a value to the next 8-bit
// step in the following matmul, so the rewrite differs by up to about 2e-3
// of the largest logit (500M-size int8: 1.8e-3) — still some 50× less than
// what the 8-bit variant itself differs from fp32 by (snapvlm bench
// --variants). The greedy tokens must agree all the same.
const gqaProbeMaxDeltaQuantized = 1e-2

// gqaProbe is the result of checking the rewrite against its source, kept
// beside the rewrite.
type gqaProbe struct {
	Source   string  `json:"source"`
	Steps    int     `json:"steps"`
	Shared   bool    `json:"shared_cache"` // the rewrite ran with decoder.Config.SharedCache
	MaxDelta float64 `json:"max_delta"`    // relative to the largest |logit|
	SameIDs  bool    `json:"same_ids"`
}

// ownAttentionName is GQARewriteName's suffix for the rewrite that runs
// snapvlm's attention kernel (ort.AttentionDomain); its number changes
// with the kernel, so that a probe kept beside an older rewrite is redone
// (2: a float16-cache export runs ort.Attention16Op, with no Casts).
const ownAttentionName = "+snapvlm-attention-2"

// halfCacheName is the suffix of a rewrite that stores a float32 cache as
// float16 (Options.KVCache).
const halfCacheName = "+f16cache"

// gqaDecoderFile returns the GroupQueryAttention rewrite of the decoder src
// (onnx.FuseGroupQueryAttention: attention on the key/value heads as they
// are cached, no repeated copies per step; with it, the head computes the
// last row of logits only and, with fuse, the matmuls that read one
// activation run as one), written once to the user cache
// dir and checked once against src on a probe, run with the cache layout it
// will be used with (cfg.SharedCache set: past and present in one buffer).
// With own, the rewrite runs snapvlm's attention kernel, with halfCache
// on a float16 cache (onnx.GQAShape.HalfCache), and falls back to ONNX
// Runtime's com.microsoft kernel if that fails; src with the reason when
// the graph is not the shape the rewrite knows or the probes differ.
// shared says whether the file returned attends in place on a shared
// cache (decoder.Config.SharedCache), ownKernel whether it runs snapvlm's
// attention kernel (decoder.Config.PrefillTogether).
func gqaDecoderFile(ctx context.Context, env *ort.Env, src string, so ort.SessionOptions, cfg decoder.Config, heads int, emb *embed.Embedder, own, fuse, halfCache bool) (file, why string, shared, ownKernel bool) {
	var notes []string
	if own {
		file, why, shared, ok := gqaRewrite(ctx, env, src, so, cfg, heads, emb, ort.AttentionDomain, fuse, halfCache)
		if ok {
			return file, why + " with snapvlm's attention kernel", shared, true
		}
		notes = append(notes, why)
	}
	file, why, shared, ok := gqaRewrite(ctx, env, src, so, cfg, heads, emb, "", fuse, false)
	if ok {
		why += " with ONNX Runtime's kernel"
	}
	return file, strings.Join(append(notes, why), "; "), shared, false
}

// gqaRewrite is gqaDecoderFile for the kernel of one operator domain
// ("" for com.microsoft); rewritten says whether file is the rewrite.
func gqaRewrite(ctx context.Context, env *ort.Env, src string, so ort.SessionOptions, cfg decoder.Config, heads int, emb *embed.Embedder, domain string, fuse, halfCache bool) (file, why string, shared, rewritten bool) {
	shape := onnx.GQAShape{Heads: heads, KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, Domain: domain}
	name := GQARewriteName
	if domain != "" {
		name += ownAttentionName
		if ort.AttentionHalf() {
			shape.HalfOp, shape.HalfCache = ort.Attention16Op, halfCache
		}
	}
	srcHalf, err := halfCacheFile(src)
	if err != nil {
		return src, fmt.Sprintf("warning: attention of %s kept as exported (%v)", filepath.Base(src), err), false, false
	}
	// com.microsoft's kernel on a float16 cache attends through Casts of the
	// whole cache, into a new present: it cannot share past and present.
	cfg.SharedCache = cfg.SharedCache && (!srcHalf || shape.HalfOp != "")
	limit := gqaProbeLimit(src)
	if shape.HalfCache && !srcHalf {
		name += halfCacheName
		// The probe then also measures float16's rounding of the cache
		// (about 5e-4 of each key and value).
		limit = max(limit, gqaProbeMaxDeltaQuantized)
	} else {
		shape.HalfCache = false
	}
	if !fuse {
		name += "+unfused"
	}
	dst, err := ort.RewrittenFile(src, name, func(data []byte) ([]byte, error) {
		out, _, err := onnx.FuseGroupQueryAttention(data, shape)
		if err != nil {
			return nil, err
		}
		// A prefill reads only its last row of logits; computing the
		// others costs chunk x vocab multiply-adds and buffers per row.
		// A head of another shape keeps all rows (Decoder.LastLogitsOnly
		// says which at load).
		if kept, err := onnx.KeepLastLogits(out); err == nil {
			out = kept
		}
		if !fuse {
			return out, nil
		}
		return fuseMatMuls(out)
	})
	if err != nil {
		return src, fmt.Sprintf("warning: attention of %s kept as exported (%v)", filepath.Base(src), err), false, false
	}
	probe, warn := checkRewrite(ctx, env, src, dst, so, cfg, emb, "attention", limit)
	if warn != "" {
		return src, warn, false, false
	}
	why = fmt.Sprintf("attention on the %d kv heads (GroupQueryAttention rewrite; probe: %d steps, same greedy tokens, max |Δlogit| %.2g of the largest)",
		cfg.KVHeads, probe.Steps, probe.MaxDelta)
	if shape.HalfCache {
		why += ", its cache stored as float16 (Options.KVCache)"
	}
	return dst, why, cfg.SharedCache, true
}

// halfCacheFile reports whether the decoder file's cache inputs are
// float16.
func halfCacheFile(file string) (bool, error) {
	ins, _, err := onnx.ReadFileIO(file)
	if err != nil {
		return false, err
	}
	for _, in := range ins {
		if strings.HasPrefix(in.Name, "past_key_values.") {
			return in.Type == onnx.Float16, nil
		}
	}
	return false, nil
}

// HeadRewriteName names, in the rewritten-file cache key, the rewrite of a
// decoder whose attention is not regrouped (as many key/value heads as
// query heads): the last-row head and the fused matmuls alone.
const HeadRewriteName = "decoder-head-v1"

// headDecoderFile returns src rewritten by onnx.KeepLastLogits and the
// matmul fusions, for decoders the attention rewrite does not apply to,
// written once to the user cache dir and checked on the same probe; src
// with the reason when neither applies or the probe differs.
func headDecoderFile(ctx context.Context, env *ort.Env, src string, so ort.SessionOptions, cfg decoder.Config, emb *embed.Embedder) (file, why string) {
	dst, err := ort.RewrittenFile(src, HeadRewriteName, func(data []byte) ([]byte, error) {
		out, err := onnx.KeepLastLogits(data)
		if err != nil {
			return nil, err
		}
		return fuseMatMuls(out)
	})
	if err != nil {
		return src, fmt.Sprintf("warning: %s kept as exported (%v)", filepath.Base(src), err)
	}
	probe, warn := checkRewrite(ctx, env, src, dst, so, cfg, emb, "head", gqaProbeLimit(src))
	if warn != "" {
		return src, warn
	}
	return dst, fmt.Sprintf("head and matmul rewrite (probe: %d steps, same greedy tokens, max |Δlogit| %.2g of the largest)", probe.Steps, probe.MaxDelta)
}

// fuseMatMuls runs onnx.FuseIntegerMatMuls and onnx.FuseMatMulNBits. In
// the rewrites it runs after onnx.KeepLastLogits, which cuts an 8-bit
// head's rows between its quantization and its matmul, so the head is
// left as it is and keeps its bits.
func fuseMatMuls(model []byte) ([]byte, error) {
	out, _, err := onnx.FuseIntegerMatMuls(model)
	if err != nil {
		return nil, err
	}
	out, _, err = onnx.FuseMatMulNBits(out)
	return out, err
}

// checkRewrite probes the rewrite dst of src (what names it in the
// warning) and returns the probe, or a warning when it failed or differs
// by more than limit (of the largest |logit|).
func checkRewrite(ctx context.Context, env *ort.Env, src, dst string, so ort.SessionOptions, cfg decoder.Config, emb *embed.Embedder, what string, limit float64) (gqaProbe, string) {
	probe, err := probeGQA(ctx, env, src, dst, so, cfg, emb)
	if err != nil {
		return probe, fmt.Sprintf("warning: %s rewrite of %s not used: %v", what, filepath.Base(src), err)
	}
	if !probe.SameIDs || probe.MaxDelta > limit {
		return probe, fmt.Sprintf("warning: %s rewrite of %s rejected: probe max |Δlogit| %.3g of the largest (limit %.3g), same greedy tokens %v",
			what, filepath.Base(src), probe.MaxDelta, limit, probe.SameIDs)
	}
	return probe, ""
}

// gqaProbeLimit is the probe's limit for the decoder file src.
func gqaProbeLimit(src string) float64 {
	if dq, err := dynamicallyQuantized(src); err == nil && dq {
		return gqaProbeMaxDeltaQuantized
	}
	return gqaProbeMaxDelta
}

// probeGQA runs src and dst on the same probe, once: a two-part prefill (the
// second with a past, as chunked prefills and follow-up turns run) and
// greedy steps, feeding each graph its own greedy token. The result is kept
// in dst+".probe.json".
func probeGQA(ctx context.Context, env *ort.Env, src, dst string, so ort.SessionOptions, cfg decoder.Config, emb *embed.Embedder) (gqaProbe, error) {
	cached := dst + ort.ProbeSuffix
	var res gqaProbe
	if b, err := os.ReadFile(cached); err == nil && json.Unmarshal(b, &res) == nil && res.Source == src && res.Shared == cfg.SharedCache {
		return res, nil
	}
	const prompt, more, steps = 24, 5, 12
	ids := make([]int64, prompt+more)
	for i := range ids {
		ids[i] = int64((i*7919 + 17) % max(cfg.Vocab, 1))
	}
	embeds, err := emb.Embed(ctx, ids)
	if err != nil {
		return res, err
	}
	h := cfg.Hidden
	var logits [2][][]float32
	var greedy [2][]int64
	for side, f := range []string{src, dst} {
		c := cfg
		c.SharedCache = side == 1 && cfg.SharedCache
		dec, err := decoder.New(env, f, so, c)
		if err != nil {
			return res, err
		}
		err = func() error {
			defer dec.Close()
			st, err := dec.NewState(prompt+more+steps, prompt)
			if err != nil {
				return err
			}
			defer st.Close()
			keep := func(l []float32) int64 {
				logits[side] = append(logits[side], append([]float32(nil), l...))
				return argmax(l)
			}
			if _, err := st.Prefill(ctx, embeds[:prompt*h]); err != nil {
				return err
			}
			l, err := st.Prefill(ctx, embeds[prompt*h:])
			if err != nil {
				return err
			}
			id := keep(l)
			for range steps {
				greedy[side] = append(greedy[side], id)
				e, err := emb.Embed(ctx, []int64{id})
				if err != nil {
					return err
				}
				if l, err = st.Step(ctx, e); err != nil {
					return err
				}
				id = keep(l)
			}
			greedy[side] = append(greedy[side], id)
			return nil
		}()
		if err != nil {
			return res, fmt.Errorf("probe of %s: %w", f, err)
		}
	}
	res = gqaProbe{Source: src, Steps: steps, Shared: cfg.SharedCache, SameIDs: true}
	var top float64
	for i := range logits[0] {
		if greedy[0][i] != greedy[1][i] {
			res.SameIDs = false
		}
		for j, x := range logits[0][i] {
			top = max(top, math.Abs(float64(x)))
			res.MaxDelta = max(res.MaxDelta, math.Abs(float64(x-logits[1][i][j])))
		}
	}
	if top == 0 {
		return res, errors.New("probe logits are all zero")
	}
	res.MaxDelta /= top
	b, err := json.Marshal(res)
	if err != nil {
		return res, err
	}
	return res, os.WriteFile(cached, b, 0o644)
}

func argmax(l []float32) int64 {
	best := 0
	for i, x := range l {
		if x > l[best] {
			best = i
		}
	}
	return int64(best)
}

// ownAttention reports whether the decoder rewrite should run snapvlm's
// attention kernel: the library took it, the graph runs on the CPU
// provider and opts do not ask for ONNX Runtime's. err says why the
// library did not take it.
func ownAttention(env *ort.Env, opts Options) (bool, error) {
	ok, err := env.Attention()
	p := strings.ToLower(opts.Provider)
	return ok && !opts.OrtAttention && (p == "" || p == "cpu"), err
}
