package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/vision"
)

// Fidelity thresholds of `bench --variants` (README, "Choosing a
// variant"): a variant passes when it is this close to fp32 on the same
// inputs.
const (
	// minVisionCosine: image features as vectors; the int8 vision rewrite's
	// own probe threshold.
	minVisionCosine = snapvlm.VisionInt8MinCosine
	// minTop1: share of forced decoder steps whose arg-max token is fp32's.
	minTop1 = 0.98
	// maxEmbedDiff: embeddings are a table lookup: any variant that is not
	// exact only adds error, never speed worth having.
	maxEmbedDiff = 0
)

// variantRow is one graph variant measured against fp32.
type variantRow struct {
	Graph   string `json:"graph"`
	Variant string `json:"variant"`
	File    string `json:"file,omitempty"`
	// Vision: ms per tile; embed: ms per prompt; decoder: ms per step.
	MS float64 `json:"ms"`
	// Decoder only: prefill of the prompt and decode tokens/s.
	PrefillMS float64 `json:"prefill_ms,omitempty"`
	TokensSec float64 `json:"decode_tokens_per_sec,omitempty"`
	// Fidelity against fp32: features (vision) or embeddings (embed).
	Cosine float64 `json:"cosine,omitempty"`
	MaxAbs float64 `json:"max_abs_diff"`
	// Decoder: share of steps with fp32's arg-max, largest logit difference.
	Top1     float64 `json:"top1_agreement,omitempty"`
	MaxLogit float64 `json:"max_abs_logit_diff,omitempty"`
	Pass     bool    `json:"pass"`
	Fastest  bool    `json:"fastest_passing"`
	Error    string  `json:"error,omitempty"`
}

type variantsReport struct {
	Model        string       `json:"model"`
	ORT          string       `json:"onnxruntime"`
	PromptTokens int          `json:"prompt_tokens"`
	Tiles        int          `json:"tiles"`
	Steps        int          `json:"forced_steps"`
	Runs         int          `json:"runs"`
	Rows         []variantRow `json:"variants"`
}

// variant is one file to measure: a shipped variant or a rewrite.
type variant struct {
	name, file string
	so         ort.SessionOptions
}

// benchVariants times every variant of every graph present (and the int8
// rewrites) on the same inputs and measures each against fp32: the fp32
// vision features and embeddings feed every decoder, and the decoders are
// forced along fp32's greedy tokens.
func benchVariants(ctx context.Context, f *engineFlags, dir string, images []*snapvlm.Image, question string, graphs []string, runs, steps int, asJSON bool, stdout, stderr io.Writer) error {
	if len(images) == 0 {
		return errors.New("bench --variants needs --image (a photo prompt)")
	}
	for _, g := range modelconfig.Graphs() {
		if !slices.Contains(snapvlm.Variants(dir, g), "fp32") {
			return fmt.Errorf("bench --variants compares with fp32: %s has no fp32 %s", dir, g)
		}
	}
	// The prompt ids and pixel values, as a generation would make them.
	ref, err := snapvlm.Load(ctx, dir, snapvlm.Options{ORTLib: f.ortLib, Dtype: "fp32", Threads: f.threads, FeatureCacheSize: -1})
	if err != nil {
		return err
	}
	req := snapvlm.Request{Messages: []snapvlm.Message{snapvlm.UserMessage(question, images...)}, GenerateOptions: f.generateOptions()}
	req.MaxNewTokens = 1
	res, err := ref.Generate(ctx, req, nil)
	if err != nil {
		ref.Close()
		return err
	}
	pixels, shape, err := ref.PixelValues(ctx, req)
	ortVersion := ref.ORTVersion()
	ref.Close()
	if err != nil {
		return err
	}
	ids, frames := res.PromptTokens, int(shape[1])
	cfg, err := modelconfig.Load(dir)
	if err != nil {
		return err
	}
	imgOpts, err := imageproc.OptionsFromConfig(cfg.Preprocessor)
	if err != nil {
		return err
	}
	env, err := openEnv(f.ortLib)
	if err != nil {
		return err
	}
	t := cfg.Config.TextConfig
	so := sessionOptions(f)
	rep := variantsReport{Model: dir, ORT: ortVersion, PromptTokens: len(ids), Tiles: frames, Steps: steps, Runs: runs}
	progress := func(g, v string) { fmt.Fprintf(stderr, "measuring %s %s\n", g, v) }
	file := func(g, d string) string { return filepath.Join(dir, filepath.FromSlash(modelconfig.GraphPath(g, d))) }
	list := func(g string) []variant {
		var vs []variant
		for _, d := range snapvlm.Variants(dir, g) {
			vs = append(vs, variant{d, file(g, d), so})
		}
		slices.SortStableFunc(vs, func(a, b variant) int { return boolInt(b.name == "fp32") - boolInt(a.name == "fp32") })
		return vs
	}

	want := func(g string) bool { return len(graphs) == 0 || slices.Contains(graphs, g) }
	// Vision: per tile, one tile per run. (fp32 always runs: its features
	// feed the decoders.)
	vcfg := vision.Config{TileSize: imgOpts.TileSize, ImageSeqLen: cfg.ImageSeqLen(), Hidden: t.HiddenSize, FramesPerRun: 1}
	vs := list(snapvlm.GraphVision)
	if rw, err := vision.Int8Rewrite(file(snapvlm.GraphVision, "fp32")); err == nil {
		vs = append(vs, variant{"int8 rewrite of fp32", rw, so})
	} else {
		fmt.Fprintf(stderr, "no int8 vision rewrite: %v\n", err)
	}
	var refFeats []float32
	for _, v := range vs {
		if v.name != "fp32" && !want(snapvlm.GraphVision) {
			continue
		}
		progress(snapvlm.GraphVision, v.name)
		row := variantRow{Graph: snapvlm.GraphVision, Variant: v.name, File: v.file}
		feats, ms, err := timeVision(ctx, env, v, vcfg, pixels, frames, runs)
		if err != nil {
			row.Error = err.Error()
		} else {
			if refFeats == nil {
				refFeats = feats
			}
			row.MS = ms
			row.Cosine, row.MaxAbs = compare(refFeats, feats)
			row.Pass = row.Cosine >= minVisionCosine
		}
		rep.Rows = append(rep.Rows, row)
	}

	// Embed: the prompt and the forced tokens.
	var refEmb []float32
	var forced []int64
	var embRef *embed.Embedder
	defer func() {
		if embRef != nil {
			embRef.Close()
		}
	}()
	for _, v := range list(snapvlm.GraphEmbed) {
		if v.name != "fp32" && !want(snapvlm.GraphEmbed) {
			continue
		}
		progress(snapvlm.GraphEmbed, v.name)
		row := variantRow{Graph: snapvlm.GraphEmbed, Variant: v.name, File: v.file}
		e, err := embed.New(env, v.file, v.so, t.HiddenSize)
		if err != nil {
			row.Error = err.Error()
			rep.Rows = append(rep.Rows, row)
			continue
		}
		var out []float32
		var times []float64
		for r := 0; r < runs && err == nil; r++ {
			start := time.Now()
			out, err = e.Embed(ctx, ids)
			times = append(times, msOf(time.Since(start)))
		}
		if err != nil {
			row.Error = err.Error()
		} else {
			if refEmb == nil {
				refEmb, embRef = out, e
			}
			row.MS = median(times)
			row.Cosine, row.MaxAbs = compare(refEmb, out)
			row.Pass = row.MaxAbs <= maxEmbedDiff
		}
		if e != embRef {
			e.Close()
		}
		rep.Rows = append(rep.Rows, row)
	}
	if refEmb == nil || refFeats == nil {
		return errors.New("bench --variants: the fp32 vision encoder or embedder failed")
	}
	embeds := slices.Clone(refEmb)
	if err := embed.Merge(embeds, ids, cfg.Config.ImageTokenID, refFeats, t.HiddenSize); err != nil {
		return err
	}

	// Decoder: fp32 runs greedy; every other variant is forced along its
	// tokens and compared step by step.
	dcfg := decoder.Config{Layers: t.NumHiddenLayers, KVHeads: t.NumKeyValueHeads, HeadDim: t.HeadDimension(), Hidden: t.HiddenSize, Vocab: t.VocabSize}
	ds := list(snapvlm.GraphDecoder)
	if slices.ContainsFunc(ds, func(v variant) bool { return v.name == "q4" }) {
		o := so
		o.MatMulNBitsAccuracy = 4
		ds = append(ds, variant{"q4 + int8 activations (--decoder-int8)", file(snapvlm.GraphDecoder, "q4"), o})
	}
	var refLogits [][]float32
	if !want(snapvlm.GraphDecoder) {
		ds = nil
	}
	for _, v := range ds {
		progress(snapvlm.GraphDecoder, v.name)
		row := variantRow{Graph: snapvlm.GraphDecoder, Variant: v.name, File: v.file}
		if v.so.MatMulNBitsAccuracy != 0 {
			row.File += " (accuracy_level 4)"
		}
		logits, prefill, step, err := forcedDecode(ctx, env, v, dcfg, embeds, embRef, &forced, steps, refLogits == nil)
		if err != nil {
			row.Error = err.Error()
		} else {
			if refLogits == nil {
				refLogits = logits
			}
			row.PrefillMS, row.MS = prefill, step
			if step > 0 {
				row.TokensSec = 1e3 / step
			}
			agree := 0
			for i := range logits {
				if argmax(logits[i]) == argmax(refLogits[i]) {
					agree++
				}
				_, d := compare(refLogits[i], logits[i])
				row.MaxLogit = max(row.MaxLogit, d)
			}
			row.Top1 = float64(agree) / float64(len(logits))
			row.Pass = row.Top1 >= minTop1
		}
		rep.Rows = append(rep.Rows, row)
	}
	markFastest(rep.Rows)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printVariants(stdout, &rep)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// timeVision encodes all frames runs times, one tile per run, and returns
// the features and the median time per tile.
func timeVision(ctx context.Context, env *ort.Env, v variant, cfg vision.Config, pixels []float32, frames, runs int) ([]float32, float64, error) {
	enc, err := vision.New(env, v.file, v.so, cfg)
	if err != nil {
		return nil, 0, err
	}
	defer enc.Close()
	per := len(pixels) / frames
	var feats []float32
	var times []float64
	for r := 0; r < runs; r++ {
		var all []float32
		for i := 0; i < frames; i++ {
			start := time.Now()
			out, err := enc.Encode(ctx, pixels[i*per:(i+1)*per], 1)
			if err != nil {
				return nil, 0, err
			}
			times = append(times, msOf(time.Since(start)))
			all = append(all, out...)
		}
		feats = all
	}
	return feats, median(times), nil
}

// forcedDecode prefills embeds and runs steps more tokens: fp32's greedy
// choices when greedy (stored in *forced), else *forced. It returns the
// logits after the prefill and after each step, the prefill time and the
// median step time (ms).
func forcedDecode(ctx context.Context, env *ort.Env, v variant, cfg decoder.Config, embeds []float32, emb *embed.Embedder, forced *[]int64, steps int, greedy bool) ([][]float32, float64, float64, error) {
	d, err := decoder.New(env, v.file, v.so, cfg)
	if err != nil {
		return nil, 0, 0, err
	}
	defer d.Close()
	n := len(embeds) / cfg.Hidden
	st, err := d.NewState(n+steps+1, 256)
	if err != nil {
		return nil, 0, 0, err
	}
	defer st.Close()
	start := time.Now()
	l, err := st.Prefill(ctx, embeds)
	if err != nil {
		return nil, 0, 0, err
	}
	prefill := msOf(time.Since(start))
	out := [][]float32{slices.Clone(l)}
	var times []float64
	for i := 0; i < steps; i++ {
		var tok int64
		if greedy {
			tok = int64(argmax(l))
			*forced = append(*forced, tok)
		} else {
			tok = (*forced)[i]
		}
		e, err := emb.Embed(ctx, []int64{tok})
		if err != nil {
			return nil, 0, 0, err
		}
		start := time.Now()
		if l, err = st.Step(ctx, e); err != nil {
			return nil, 0, 0, err
		}
		times = append(times, msOf(time.Since(start)))
		out = append(out, slices.Clone(l))
	}
	return out, prefill, median(times), nil
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// compare returns the cosine similarity of a and b and their largest
// absolute difference.
func compare(a, b []float32) (cosine, maxAbs float64) {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot, na, nb = dot+x*y, na+x*x, nb+y*y
		maxAbs = max(maxAbs, math.Abs(x-y))
	}
	if na == 0 || nb == 0 {
		return 0, maxAbs
	}
	return dot / math.Sqrt(na*nb), maxAbs
}

// markFastest flags, per graph, the fastest variant that passes.
func markFastest(rows []variantRow) {
	best := map[string]int{}
	for i, r := range rows {
		if !r.Pass || r.Error != "" {
			continue
		}
		if j, ok := best[r.Graph]; !ok || r.MS < rows[j].MS {
			best[r.Graph] = i
		}
	}
	for _, i := range best {
		rows[i].Fastest = true
	}
}

func printVariants(w io.Writer, r *variantsReport) {
	fmt.Fprintf(w, "model %s (ONNX Runtime %s): %d prompt tokens, %d tiles, %d forced decoder steps, medians of %d runs\n",
		r.Model, r.ORT, r.PromptTokens, r.Tiles, r.Steps, r.Runs)
	fmt.Fprintf(w, "pass: vision feature cosine ≥ %g, decoder top-1 agreement ≥ %g, embeddings exact; * = fastest passing\n", minVisionCosine, minTop1)
	graph := ""
	for _, x := range r.Rows {
		if x.Graph != graph {
			graph = x.Graph
			fmt.Fprintf(w, "\n%s\n", graph)
		}
		mark := " "
		if x.Fastest {
			mark = "*"
		}
		if x.Error != "" {
			fmt.Fprintf(w, " %s %-40s error: %s\n", mark, x.Variant, x.Error)
			continue
		}
		switch x.Graph {
		case snapvlm.GraphVision:
			fmt.Fprintf(w, " %s %-40s %8.1f ms/tile   cosine %.6f  max|Δ| %-9.4g pass %v\n", mark, x.Variant, x.MS, x.Cosine, x.MaxAbs, x.Pass)
		case snapvlm.GraphEmbed:
			fmt.Fprintf(w, " %s %-40s %8.1f ms         max|Δ| %-9.4g pass %v\n", mark, x.Variant, x.MS, x.MaxAbs, x.Pass)
		default:
			fmt.Fprintf(w, " %s %-40s %8.1f tok/s  prefill %7.0f ms  top-1 %.4f  max|Δlogit| %-8.4g pass %v\n", mark, x.Variant, x.TokensSec, x.PrefillMS, x.Top1, x.MaxLogit, x.Pass)
		}
	}
}

// openEnv opens ONNX Runtime as Load does.
func openEnv(lib string) (*ort.Env, error) { return ort.Open(ort.Options{LibPath: lib}) }

// sessionOptions are the session options of the engine flags.
func sessionOptions(f *engineFlags) ort.SessionOptions {
	return ort.SessionOptions{IntraOpThreads: f.threads, Provider: f.provider}
}
