package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/vision"
)

// Fidelity thresholds of BenchVariants (README, "Choosing a variant"): a
// variant passes when it is this close to fp32 on the same inputs.
const (
	// VariantMinVisionCosine is the cosine similarity of a vision variant's
	// image features (as vectors) with fp32's: the int8 vision rewrite's
	// own probe threshold.
	VariantMinVisionCosine = VisionInt8MinCosine
	// VariantMinTop1 is the share of forced decoder steps whose arg-max
	// token is fp32's.
	VariantMinTop1 = 0.98
	// VariantMaxEmbedDiff: embeddings are a table lookup, so any variant
	// that is not exact only adds error, never speed worth having.
	VariantMaxEmbedDiff = 0
)

// VariantBenchOptions configure BenchVariants.
type VariantBenchOptions struct {
	ORTLib   string // as Options.ORTLib
	Threads  int    // as Options.Threads
	Provider string // as Options.Provider
	// Graphs are the graphs whose variants are measured (GraphVision,
	// GraphEmbed, GraphDecoder); nil = all. The fp32 vision encoder and
	// embedder always run: their outputs feed the decoders.
	Graphs []string
	// Runs is the number of timed runs (medians are reported); 0 = 1.
	Runs int
	// Steps is the number of decoder steps forced along fp32's greedy
	// tokens and compared; 0 = 512.
	Steps int
	// Progress, when not nil, is told each variant as its measurement
	// starts.
	Progress func(graph, variant string)
}

// VariantRow is one graph variant measured against fp32.
type VariantRow struct {
	Graph   string `json:"graph"`          // GraphVision, GraphEmbed or GraphDecoder
	Variant string `json:"variant"`        // the dtype, or the rewrite's name
	File    string `json:"file,omitempty"` // the graph file (and session setting)
	// MS is the median time: vision ms per tile, embed ms per prompt,
	// decoder ms per step.
	MS float64 `json:"ms"`
	// Decoder only: the prefill of the prompt and the decode tokens/s.
	PrefillMS float64 `json:"prefill_ms,omitempty"`
	TokensSec float64 `json:"decode_tokens_per_sec,omitempty"`
	// Fidelity against fp32 of the features (vision) or embeddings
	// (embed): cosine similarity and largest absolute difference.
	Cosine float64 `json:"cosine,omitempty"`
	MaxAbs float64 `json:"max_abs_diff"`
	// Decoder: the share of steps with fp32's arg-max token and the
	// largest logit difference.
	Top1     float64 `json:"top1_agreement,omitempty"`
	MaxLogit float64 `json:"max_abs_logit_diff,omitempty"`
	Pass     bool    `json:"pass"`            // within the thresholds (VariantMinVisionCosine, ...)
	Fastest  bool    `json:"fastest_passing"` // the fastest passing variant of its graph
	Error    string  `json:"error,omitempty"` // why the variant could not be measured
}

// VariantReport is what BenchVariants measured.
type VariantReport struct {
	Model        string       `json:"model"`         // the model directory
	ORT          string       `json:"onnxruntime"`   // the ONNX Runtime version
	PromptTokens int          `json:"prompt_tokens"` // of the request
	Tiles        int          `json:"tiles"`         // vision-encoder frames of its images
	Steps        int          `json:"forced_steps"`  // decoder steps compared
	Runs         int          `json:"runs"`          // timed runs per variant
	Rows         []VariantRow `json:"variants"`      // by graph, fp32 first
	// Notes say what could not be measured, such as an int8 rewrite that
	// could not be made.
	Notes []string `json:"notes,omitempty"`
}

// benchVariant is one file to measure: a shipped variant or a rewrite.
type benchVariant struct {
	name, file string
	so         ort.SessionOptions
}

// BenchVariants times every variant of every graph present in the model
// directory dir (and the int8 rewrites: of the fp32 vision encoder, and the
// q4 decoder with int8 activations, Options.DecoderInt8) on the inputs of
// req, and measures each against fp32: the fp32 vision features and
// embeddings feed every decoder, and the decoders are forced along fp32's
// greedy tokens. req must have an image. `snapvlm bench --variants` prints
// the report.
func BenchVariants(ctx context.Context, dir string, req Request, opts VariantBenchOptions) (*VariantReport, error) {
	runs, steps := max(opts.Runs, 1), opts.Steps
	if steps <= 0 {
		steps = 512
	}
	for _, g := range modelconfig.Graphs() {
		if !slices.Contains(Variants(dir, g), "fp32") {
			return nil, fmt.Errorf("bench variants compares with fp32: %s has no fp32 %s", dir, g)
		}
	}
	// The prompt ids and pixel values, as a generation makes them.
	proc, err := OpenProcessor(dir, ProcessorOptions{})
	if err != nil {
		return nil, err
	}
	pr, err := proc.Process(ctx, req, ProcessOptions{PixelValues: true})
	if err != nil {
		return nil, err
	}
	env, err := openRuntime(opts.ORTLib)
	if err != nil {
		return nil, err
	}
	b := &variantBench{
		ctx: ctx, env: env, dir: dir, cfg: proc.proc.Config, opts: opts, runs: runs, steps: steps,
		so:  ort.SessionOptions{IntraOpThreads: opts.Threads, Provider: opts.Provider},
		ids: pr.IDs, pixels: pr.PixelValues, frames: int(pr.Shape[1]), tileSize: int(pr.Shape[3]),
		rep: &VariantReport{Model: dir, ORT: env.Version(), PromptTokens: len(pr.IDs), Tiles: int(pr.Shape[1]), Steps: steps, Runs: runs},
	}
	feats := b.vision()
	embeds, emb := b.embed()
	if emb != nil {
		defer emb.Close()
	}
	if embeds == nil || feats == nil {
		return nil, errors.New("bench variants: the fp32 vision encoder or embedder failed")
	}
	if err := embed.Merge(embeds, pr.IDs, proc.proc.ImageTokenID, feats, b.cfg.Config.TextConfig.HiddenSize); err != nil {
		return nil, err
	}
	if b.want(GraphDecoder) {
		b.decoders(embeds, emb)
	}
	markFastest(b.rep.Rows)
	return b.rep, nil
}

// variantBench is one BenchVariants run: its inputs, settings and report.
type variantBench struct {
	ctx              context.Context
	env              *ort.Env
	dir              string
	cfg              *modelconfig.Model
	opts             VariantBenchOptions
	so               ort.SessionOptions
	runs, steps      int
	ids              []int64
	pixels           []float32
	frames, tileSize int
	rep              *VariantReport
}

func (b *variantBench) want(graph string) bool {
	return len(b.opts.Graphs) == 0 || slices.Contains(b.opts.Graphs, graph)
}

func (b *variantBench) progress(graph, variant string) {
	if b.opts.Progress != nil {
		b.opts.Progress(graph, variant)
	}
}

func (b *variantBench) file(graph, dtype string) string {
	return filepath.Join(b.dir, filepath.FromSlash(modelconfig.GraphPath(graph, dtype)))
}

// list is the variants of graph present, fp32 first.
func (b *variantBench) list(graph string) []benchVariant {
	var vs []benchVariant
	for _, d := range Variants(b.dir, graph) {
		vs = append(vs, benchVariant{d, b.file(graph, d), b.so})
	}
	slices.SortStableFunc(vs, func(x, y benchVariant) int { return boolInt(y.name == "fp32") - boolInt(x.name == "fp32") })
	return vs
}

// vision times the vision variants, one tile per run, and returns fp32's
// features (nil if it failed).
func (b *variantBench) vision() []float32 {
	t := b.cfg.Config.TextConfig
	vcfg := vision.Config{TileSize: b.tileSize, ImageSeqLen: b.cfg.ImageSeqLen(), Hidden: t.HiddenSize, FramesPerRun: 1}
	vs := b.list(GraphVision)
	if rw, err := vision.Int8Rewrite(b.file(GraphVision, "fp32")); err == nil {
		vs = append(vs, benchVariant{"int8 rewrite of fp32", rw, b.so})
	} else {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("no int8 vision rewrite: %v", err))
	}
	var ref []float32
	for _, v := range vs {
		if v.name != "fp32" && !b.want(GraphVision) {
			continue
		}
		b.progress(GraphVision, v.name)
		row := VariantRow{Graph: GraphVision, Variant: v.name, File: v.file}
		feats, ms, err := timeVision(b.ctx, b.env, v, vcfg, b.pixels, b.frames, b.runs)
		if err != nil {
			row.Error = err.Error()
		} else {
			if ref == nil {
				ref = feats
			}
			row.MS = ms
			row.Cosine, row.MaxAbs = compareFeatures(ref, feats)
			row.Pass = row.Cosine >= VariantMinVisionCosine
		}
		b.rep.Rows = append(b.rep.Rows, row)
	}
	return ref
}

// embed times the embedder variants on the prompt and returns fp32's
// embeddings and embedder (for the forced tokens; the caller closes it).
func (b *variantBench) embed() ([]float32, *embed.Embedder) {
	var ref []float32
	var refEmb *embed.Embedder
	for _, v := range b.list(GraphEmbed) {
		if v.name != "fp32" && !b.want(GraphEmbed) {
			continue
		}
		b.progress(GraphEmbed, v.name)
		row := VariantRow{Graph: GraphEmbed, Variant: v.name, File: v.file}
		e, err := embed.New(b.env, v.file, v.so, b.cfg.Config.TextConfig.HiddenSize)
		if err != nil {
			row.Error = err.Error()
			b.rep.Rows = append(b.rep.Rows, row)
			continue
		}
		var out []float32
		var times []float64
		for r := 0; r < b.runs && err == nil; r++ {
			start := time.Now()
			out, err = e.Embed(b.ctx, b.ids)
			times = append(times, ms(time.Since(start)))
		}
		if err != nil {
			row.Error = err.Error()
		} else {
			if ref == nil {
				ref, refEmb = out, e
			}
			row.MS = median(times)
			row.Cosine, row.MaxAbs = compareFeatures(ref, out)
			row.Pass = row.MaxAbs <= VariantMaxEmbedDiff
		}
		if e != refEmb {
			e.Close()
		}
		b.rep.Rows = append(b.rep.Rows, row)
	}
	return slices.Clone(ref), refEmb
}

// decoders runs fp32 greedy from embeds, then forces every other decoder
// variant along its tokens and compares the logits step by step.
func (b *variantBench) decoders(embeds []float32, emb *embed.Embedder) {
	t := b.cfg.Config.TextConfig
	dcfg := decoder.Config{Layers: t.NumHiddenLayers, KVHeads: t.NumKeyValueHeads, HeadDim: t.HeadDimension(), Hidden: t.HiddenSize, Vocab: t.VocabSize}
	ds := b.list(GraphDecoder)
	if slices.ContainsFunc(ds, func(v benchVariant) bool { return v.name == "q4" }) {
		o := b.so
		o.MatMulNBitsAccuracy, o.MatMulQ4 = 4, true
		ds = append(ds, benchVariant{"q4 + int8 activations (Options.DecoderInt8)", b.file(GraphDecoder, "q4"), o})
		// The same with its cache stored as float16 (Options.KVCache), on
		// the attention rewrite that does it.
		if own, _ := b.env.Attention(); own && ort.AttentionHalf() && t.NumAttentionHeads > t.NumKeyValueHeads && t.NumKeyValueHeads > 0 {
			c := dcfg
			c.SharedCache = true
			f, why, _, _ := gqaDecoderFile(b.ctx, b.env, b.file(GraphDecoder, "q4"), b.so, c, t.NumAttentionHeads, emb, true, true, true)
			if strings.Contains(why, "float16") {
				ds = append(ds, benchVariant{"q4 + int8 activations + float16 cache (Options.KVCache)", f, o})
			}
		}
	}
	var refLogits [][]float32
	var forced []int64
	for _, v := range ds {
		b.progress(GraphDecoder, v.name)
		row := VariantRow{Graph: GraphDecoder, Variant: v.name, File: v.file}
		if v.so.MatMulNBitsAccuracy != 0 {
			row.File += " (accuracy_level 4)"
		}
		logits, prefill, step, err := forcedDecode(b.ctx, b.env, v, dcfg, embeds, emb, &forced, b.steps, refLogits == nil)
		if err != nil {
			row.Error = err.Error()
			b.rep.Rows = append(b.rep.Rows, row)
			continue
		}
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
			_, d := compareFeatures(refLogits[i], logits[i])
			row.MaxLogit = max(row.MaxLogit, d)
		}
		row.Top1 = float64(agree) / float64(len(logits))
		row.Pass = row.Top1 >= VariantMinTop1
		b.rep.Rows = append(b.rep.Rows, row)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// timeVision encodes all frames runs times, one tile per run, and returns
// the features and the median time per tile.
func timeVision(ctx context.Context, env *ort.Env, v benchVariant, cfg vision.Config, pixels []float32, frames, runs int) ([]float32, float64, error) {
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
			times = append(times, ms(time.Since(start)))
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
func forcedDecode(ctx context.Context, env *ort.Env, v benchVariant, cfg decoder.Config, embeds []float32, emb *embed.Embedder, forced *[]int64, steps int, greedy bool) ([][]float32, float64, float64, error) {
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
	prefill := ms(time.Since(start))
	out := [][]float32{slices.Clone(l)}
	var times []float64
	for i := 0; i < steps; i++ {
		var tok int64
		if greedy {
			tok = argmax(l)
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
		times = append(times, ms(time.Since(start)))
		out = append(out, slices.Clone(l))
	}
	return out, prefill, median(times), nil
}

// markFastest flags, per graph, the fastest variant that passes.
func markFastest(rows []VariantRow) {
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

// median is the middle value of x (0 for none).
func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
