package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/snapvlm/snapvlm"
)

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

// Set adds one value (flag.Value).
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// engineFlags are the flags of every command that loads and runs a model.
type engineFlags struct {
	model                         string
	yes                           bool
	ortLib                        string
	dtype, vdtype, edtype, ddtype string
	threads                       int
	decoderInt8                   bool
	plainAttention                bool
	ortAttention                  bool
	noGraphCache                  bool
	visionInt8                    bool
	visionBatch                   int
	provider                      string
	images                        multiFlag
	noSplit                       bool
	imageSize                     int
	maxTokens                     int
	temperature                   float64
	topK                          int
	topP, minP, repPenalty        float64
	seed                          uint64
	stops                         multiFlag
	verbose                       bool
	maxImageBytes                 int64
	system                        string
	videos                        videoFlags
	// promptCacheMB is Options.PromptCacheMB (serve's --cache-mb; the
	// other commands keep no prompt cache).
	promptCacheMB int
	// parallel is Options.Parallel (serve's --parallel: generations
	// decoding in one batch).
	parallel int
	// kvCache is Options.KVCache.
	kvCache string
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model directory, or Hugging Face repo id (org/name[@revision])")
	fs.BoolVar(&f.yes, "yes", false, "download a model that is not cached without asking")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime library file (default: as 'snapvlm setup' installs it)")
	fs.StringVar(&f.dtype, "dtype", "", "ONNX variant of all graphs: fp32, fp16, q4, q4f16, int8, uint8, quantized, bnb4 (default per graph: int8 vision; the q4 decoder with int8 activations on snapvlm's kernel where the CPU has AVX-512 VNNI, else int8; exact embeddings; else q4, else fp32; see README)")
	fs.StringVar(&f.vdtype, "vision-dtype", "", "variant of the vision encoder (overrides --dtype)")
	fs.StringVar(&f.edtype, "embed-dtype", "", "variant of the token embedder (overrides --dtype)")
	fs.StringVar(&f.ddtype, "decoder-dtype", "", "variant of the decoder (overrides --dtype)")
	fs.BoolVar(&f.decoderInt8, "decoder-int8", false, "run the decoder's 4-bit matmuls with int8 activations: ~2.5x faster decoding on CPU, not bit-exact (the default decoder where snapvlm's kernel runs; --decoder-dtype q4 alone is exact)")
	fs.StringVar(&f.kvCache, "kv-cache", "", "element type of the decoder's key/value cache: f16 (half its memory and the bytes a long context reads per step, not bit-exact) or f32 (default: as exported)")
	fs.BoolVar(&f.plainAttention, "plain-attention", false, "keep the decoder's attention as exported (key/value heads repeated every step) instead of the GroupQueryAttention rewrite")
	fs.BoolVar(&f.ortAttention, "ort-attention", false, "run the rewritten attention on ONNX Runtime's GroupQueryAttention kernel instead of snapvlm's (slower at long contexts)")
	fs.BoolVar(&f.noGraphCache, "no-graph-cache", false, "optimise the graphs at every load instead of loading the optimised copies an earlier load saved (~/.cache/snapvlm/rewritten)")
	fs.BoolVar(&f.visionInt8, "vision-int8", false, "run the vision encoder as an int8 rewrite of its file (made once, cached, checked on a probe tile): faster on CPU, not bit-exact")
	fs.IntVar(&f.visionBatch, "vision-batch", 0, "tiles the vision encoder runs at once: fewer use less memory, more are a little faster (default 2)")
	fs.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per physical core)")
	fs.StringVar(&f.provider, "provider", "", "execution provider (default CPU; cuda, coreml, XNNPACK where the library has them)")
	fs.Var(&f.images, "image", "image file (repeat for several images)")
	fs.BoolVar(&f.noSplit, "no-split", false, "encode each image as one tile: much faster, less detail")
	fs.IntVar(&f.imageSize, "image-size", 0, "resize images so the longest edge is this many pixels before tiling (default from the model)")
	fs.IntVar(&f.maxTokens, "max-tokens", 256, "maximum new tokens")
	fs.Float64Var(&f.temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fs.IntVar(&f.topK, "top-k", 0, "sample from the k most likely tokens (0: off)")
	fs.Float64Var(&f.topP, "top-p", 0, "nucleus sampling mass (0 or 1: off)")
	fs.Float64Var(&f.minP, "min-p", 0, "drop tokens below this fraction of the top probability (0: off)")
	fs.Float64Var(&f.repPenalty, "repetition-penalty", 0, "penalty for repeating tokens (1 or 0: off)")
	fs.Uint64Var(&f.seed, "seed", 0, "sampling seed for reproducible output (0: random)")
	fs.Var(&f.stops, "stop", "stop string (repeatable)")
	fs.BoolVar(&f.verbose, "verbose", false, "print timings and token counts to stderr")
	fs.Int64Var(&f.maxImageBytes, "max-image-bytes", snapvlm.DefaultMaxImageBytes, "refuse image files larger than this many bytes")
	fs.StringVar(&f.system, "system", "", "system message sent before the conversation")
	f.videos.register(fs)
}

func (f *engineFlags) load(ctx context.Context, textOnly bool) (*snapvlm.Model, error) {
	if f.model == "" {
		return nil, fmt.Errorf("--model is required (a model directory or a Hugging Face repo id)")
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	dir, err := resolveModel(ctx, f.model, f.yes, f.dtype, f.graphDtypes())
	if err != nil {
		return nil, err
	}
	m, err := snapvlm.Load(ctx, dir, f.options(textOnly))
	if err != nil {
		return nil, withFlagHints(err)
	}
	if err := f.validateFor(m); err != nil {
		m.Close()
		return nil, err
	}
	if f.verbose {
		fmt.Fprintf(os.Stderr, "loaded %s in %s (ONNX Runtime %s)\n", dir, m.LoadTime().Round(1e6), m.ORTVersion())
		for _, g := range []string{snapvlm.GraphVision, snapvlm.GraphEmbed, snapvlm.GraphDecoder} {
			if p, ok := m.Files()[g]; ok {
				fmt.Fprintf(os.Stderr, "  %s (%s)\n", p, m.FileReasons()[g])
			}
		}
	}
	return m, nil
}

// graphDtypes are the per-graph variant flags, keyed as the hub names graphs.
func (f *engineFlags) graphDtypes() map[string]string {
	out := map[string]string{}
	for g, d := range map[string]string{snapvlm.GraphVision: f.vdtype, snapvlm.GraphEmbed: f.edtype, snapvlm.GraphDecoder: f.ddtype} {
		if d != "" {
			out[g] = d
		}
	}
	return out
}

// options are the Load options the flags ask for.
func (f *engineFlags) options(textOnly bool) snapvlm.Options {
	return snapvlm.Options{
		ORTLib: f.ortLib, Dtype: f.dtype, VisionDtype: f.vdtype, EmbedDtype: f.edtype, DecoderDtype: f.ddtype,
		Threads: f.threads, Provider: f.provider, TextOnly: textOnly, DecoderInt8: f.decoderInt8, KVCache: f.kvCache, PlainAttention: f.plainAttention, OrtAttention: f.ortAttention, VisionBatch: f.visionBatch,
		VisionInt8: f.visionInt8, NoGraphCache: f.noGraphCache, PromptCacheMB: f.promptCacheMB, Parallel: f.parallel,
	}
}

// generateOptions are the answer settings the flags ask for.
func (f *engineFlags) generateOptions() snapvlm.GenerateOptions {
	return snapvlm.GenerateOptions{
		MaxNewTokens: f.maxTokens, Temperature: float32(f.temperature), TopK: f.topK, TopP: float32(f.topP),
		MinP: float32(f.minP), RepetitionPenalty: float32(f.repPenalty), Seed: f.seed, Stop: f.stops,
		NoSplit: f.noSplit, ImageSize: f.imageSize, MaxFrames: f.videos.maxFrames, VideoFPS: f.videos.fps,
	}
}

// withFlagHints adds what the command line can do about an engine error
// (the library's messages name its options, not the flags).
func withFlagHints(err error) error {
	var uv *snapvlm.UnsupportedVariantError
	switch {
	case errors.As(err, &uv) && len(uv.Alternatives) > 0:
		return fmt.Errorf("%w\n(pass %s %s)", err, dtypeFlag(uv.Graph), uv.Alternatives[0])
	case errors.Is(err, snapvlm.ErrPromptTooLong):
		return fmt.Errorf("%w\n(fewer --image files, --no-split or a smaller --image-size make it shorter)", err)
	case errors.Is(err, snapvlm.ErrRuntimeMissing):
		return fmt.Errorf("%w\n(run 'snapvlm setup', or pass --ort-lib FILE)", err)
	case errors.Is(err, snapvlm.ErrVariantMissing):
		return fmt.Errorf("%w\n(pick a present variant with --dtype, or fetch one with 'snapvlm pull REPO --dtype D')", err)
	}
	return err
}

// dtypeFlag is the flag choosing a graph's variant.
func dtypeFlag(graph string) string {
	switch graph {
	case snapvlm.GraphVision:
		return "--vision-dtype"
	case snapvlm.GraphEmbed:
		return "--embed-dtype"
	}
	return "--decoder-dtype"
}

// systemMessages is the --system message, if any, to put first.
func (f *engineFlags) systemMessages() []snapvlm.Message {
	if f.system == "" {
		return nil
	}
	return []snapvlm.Message{snapvlm.TextMessage(snapvlm.System, f.system)}
}

// readImage reads one image file within --max-image-bytes.
func (f *engineFlags) readImage(path string) (*snapvlm.Image, error) {
	img, err := snapvlm.ImageFileLimit(path, f.maxImageBytes)
	if errors.Is(err, snapvlm.ErrImageTooLarge) {
		return nil, fmt.Errorf("%w (--max-image-bytes raises the limit)", err)
	}
	return img, err
}

// readImages reads the --image files.
func (f *engineFlags) readImages() ([]*snapvlm.Image, error) {
	var out []*snapvlm.Image
	for _, p := range f.images {
		img, err := f.readImage(p)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func printStats(w io.Writer, res *snapvlm.Result) {
	t := res.Timings
	fmt.Fprintf(w, "\n[prompt %d tokens (%d image tokens, %d tiles), generated %d tokens, finish %s]\n",
		len(res.PromptTokens), res.ImageTokens, res.Tiles, len(res.Tokens), res.FinishReason)
	if res.ReusedTokens > 0 {
		fmt.Fprintf(w, "[%d prompt tokens reused from the previous turn's cache]\n", res.ReusedTokens)
	}
	cached := 0
	for _, im := range res.Images {
		if im.Cached {
			cached++
		}
	}
	if cached > 0 {
		fmt.Fprintf(w, "[%d of %d image(s) from the feature cache]\n", cached, len(res.Images))
	}
	fmt.Fprintf(w, "[preprocess %s, vision %s, prefill %s, first token %s, decode %.1f tokens/s]\n",
		t.Preprocess.Round(1e5), t.Vision.Round(1e5), t.Prefill.Round(1e5), t.FirstToken.Round(1e5), t.DecodeTokensPerSec)
	if t.Constraint > 0 {
		fmt.Fprintf(w, "[structured output: %s masking tokens (%.0f µs per token)]\n",
			t.Constraint.Round(1e5), t.Constraint.Seconds()*1e6/float64(max(len(res.Tokens), 1)))
	}
	printVideoStats(w, res)
}
