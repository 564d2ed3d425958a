// Package snapvlm runs SmolVLM and SmolVLM2 vision-language models from their
// Hugging Face ONNX exports on ONNX Runtime: images and a question in, a
// streamed answer out.
//
// A Model is loaded once from a model directory in the Hugging Face layout
// (config files, tokenizer.json and onnx/{vision_encoder,embed_tokens,
// decoder_model_merged}*.onnx) and is safe for concurrent use: the ONNX
// Runtime sessions, the tokenizer and the image-feature cache are shared,
// while every call to Generate has its own key/value cache and tensors.
//
// Load (or LoadFromHub, given a Hugging Face repo id) opens a model;
// Model.Generate answers one Request (messages with images, and the
// GenerateOptions of the answer), streaming each Token to a callback; a Chat
// keeps a conversation and its decoder cache between turns. Images come
// from files (ImageFile), readers (ImageReader) or decoded images
// (ImageFromImage). A cancelled context returns the partial Result with
// ctx.Err(). Errors a caller can branch on are ErrRuntimeMissing,
// *ModelError, ErrVariantMissing, *UnsupportedVariantError, ErrImage,
// *PromptTooLongError (checked before any image is encoded) and ErrClosed;
// their messages name the Options and GenerateOptions fields involved,
// never a command-line flag.
//
// A Processor (OpenProcessor, or Model.Processor) turns a Request into
// what the graphs take without ONNX Runtime: the prompt text and ids, each
// image's tile grid and, when asked, the pixel values, as Generate makes
// them. LoadTokenizer reads a tokenizer alone. BenchVariants measures every
// file variant of a model against fp32.
//
// The pipeline runs one way: messages and images -> prompt ids and tile
// grids (internal/processor) -> pixels (internal/imageproc) -> image
// features (internal/vision) -> embeddings (internal/embed) -> decoder with
// its cache (internal/decoder) -> tokens (internal/sample, a
// LogitsProcessor) -> text (internal/tokenizer).
package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/processor"
	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
	"github.com/snapvlm/snapvlm/internal/vision"
)

// Version is the snapvlm release.
const Version = "0.1.0-dev"

// Graph file stems inside a model's onnx/ folder.
const (
	GraphVision  = modelconfig.GraphVision
	GraphEmbed   = modelconfig.GraphEmbed
	GraphDecoder = modelconfig.GraphDecoder
)

// defaultOrder picks, per graph, the first variant present: the order of
// `snapvlm bench --variants` on the 256M-size model (README, "Choosing a
// variant"), fastest first among the variants that pass its fidelity
// thresholds against fp32, then the rest. int8 (u8 activations × s8
// weights, ONNX Runtime's integer dot-product path) is the fastest vision
// encoder and decoder; embeddings are a lookup, so only exact variants
// come first (q4 ships a float table). Where snapvlm's 4-bit kernel runs,
// defaultQ4Decoder picks the decoder before this order.
func defaultOrder(graph string) []string {
	switch graph {
	case GraphEmbed:
		return []string{"q4", "fp32", "fp16", "bnb4", "q4f16", "quantized", "uint8", "int8"}
	case GraphVision:
		return []string{"int8", "q4", "fp32", "quantized", "uint8", "fp16", "q4f16", "bnb4"}
	}
	return []string{"int8", "q4", "fp32", "quantized", "uint8", "fp16", "q4f16", "bnb4"}
}

// Options configure Load. The zero value loads the default variants with
// ONNX Runtime's default threading on the CPU.
type Options struct {
	// ORTLib is the ONNX Runtime library file; empty searches as
	// `snapvlm setup` installs it (see internal/ort.FindLibrary).
	ORTLib string
	// Dtype picks the file variant of all three graphs: fp32, fp16, q4, q4f16,
	// int8, uint8, quantized, bnb4, or "" / "auto" for the default.
	Dtype string
	// VisionDtype, EmbedDtype and DecoderDtype override Dtype per graph.
	VisionDtype, EmbedDtype, DecoderDtype string
	// Threads is ONNX Runtime's intra-op thread count; 0 = physical cores.
	Threads int
	// Provider is the execution provider ("" = CPU).
	Provider string
	// OptLevel is the graph optimisation level ("" = all).
	OptLevel string
	// TextOnly skips the vision encoder (a text-only model use).
	TextOnly bool
	// PrefillChunk bounds the tokens per decoder run during prefill (and so
	// the logits buffer, chunk x vocab floats); 0 = 256, the fastest of
	// 128-1024 in BenchmarkPrefill for the fp32 and q4 256M-size decoders.
	PrefillChunk int
	// VisionBatch is the number of tiles the vision encoder runs at once
	// (its activations grow with it); 0 = 2. See README (Speed).
	VisionBatch int
	// DecoderInt8 runs the decoder's 4-bit matmuls (MatMulNBits, in the q4
	// variants) with int8 activations (a scale per row and block of 32) and
	// integer dot products: about 2.5x faster decoding on CPU, at the cost
	// of exactness (a near-tie token may come out differently from the
	// reference implementations). On a CPU with AVX-512 VNNI they run on
	// snapvlm's 4-bit kernel (internal/ort's matmulq4.c, AMX tiles for
	// prefills where the process has them), elsewhere on ONNX Runtime's
	// accuracy_level 4 path. Where the kernel runs, this is the default
	// decoder when no decoder variant is asked for and a q4 decoder is
	// present (see README, Choosing a variant).
	DecoderInt8 bool
	// KVCache is the element type of the decoder's key/value cache: "f16"
	// stores a float32 cache as float16, "f32", "" or "auto" keeps it as
	// exported. float16 halves the cache's memory (a prompt cache holds
	// twice the tokens) and the bytes a long context's step reads, and
	// rounds each key and value to float16 (as the fp16 exports and
	// llama.cpp's default cache do), so it is not bit-exact. On the machine
	// the README's numbers come from, whose cache sits in a 300 MB
	// third-level cache, it decoded no faster and prefilled ~10 % slower
	// (README, Speed), so it is not the default. It takes snapvlm's
	// attention kernel (the attention rewrite on the CPU provider);
	// elsewhere the cache is as exported.
	KVCache string
	// VisionInt8 runs the vision encoder as an int8 rewrite of the chosen
	// vision file (see VisionInt8MinCosine): every float MatMul weight
	// quantized to int8 per column, activations to uint8 at run time, the
	// u8×s8 integer path of ONNX Runtime's CPU provider. Written once to
	// the user cache dir and checked on a probe tile; a rewrite that fails
	// the check is not used (Model.FileReasons says so).
	VisionInt8 bool
	// PlainAttention keeps the decoder's attention as exported
	// (MultiHeadAttention on key/value heads repeated for every query head,
	// each step). By default the decoder is rewritten once, at load, to
	// attend on the cached key/value heads directly (GroupQueryAttention;
	// cached in the user cache dir and checked against the original on a
	// probe; a graph of another shape or a failed probe keeps the original,
	// and Model.FileReasons says so).
	PlainAttention bool
	// OrtAttention runs the rewritten attention on ONNX Runtime's
	// com.microsoft GroupQueryAttention kernel instead of snapvlm's own
	// (internal/ort's attention.c: one pass over the cache per query row;
	// on the 500M size 2-4× faster at long contexts and in prefills, on the
	// 256M size up to 30 %; CPU provider only).
	OrtAttention bool
	// unfused leaves the decoder's matmuls apart in the attention rewrite
	// (onnx.FuseIntegerMatMuls, onnx.FuseMatMulNBits), for benchmarks
	// that compare the two.
	unfused bool
	// NoGraphCache loads every graph from its file and lets ONNX Runtime
	// optimise it again. By default the optimised graph is saved once to
	// the user cache dir (~/.cache/snapvlm/rewritten, as ONNX with its
	// weights in a data file, keyed by the model file, the ONNX Runtime
	// version, the level and the CPU) and later loads open that copy with
	// optimisation off and its weights memory-mapped instead of copied (CPU
	// provider only; a copy that fails to load is removed, and FileReasons
	// says so).
	NoGraphCache bool
	// Parallel is how many generations decode together: with more than 1,
	// concurrent Generate calls (and chat turns) run their decoder steps
	// as one batch (continuous batching: each prefills on its own, a chunk
	// at a time between the batch's steps, joins the batch between two
	// steps and leaves when done), so the weights are read once per step
	// for all of them; a generation beyond Parallel waits after its
	// prefill for a free place. It needs the decoder's attention rewrite
	// (not PlainAttention; for the fp16 / q4f16 variants, snapvlm's
	// attention kernel); otherwise every generation decodes alone and
	// Model.FileReasons says so. 0 or 1: every generation decodes alone.
	// The batch holds a copy of each seated generation's cache (about 46 KB
	// per token on a 256M model), sized for the longest answer seated since
	// it was last empty; it is freed 30 s after the last generation left.
	Parallel int
	// FeatureCacheSize is how many images' features are kept for reuse
	// across questions; 0 = 32, negative disables the cache.
	FeatureCacheSize int
	// PromptCacheMB is the memory, in MiB, for the decoder caches of recent
	// requests: a request whose prompt starts with the same tokens and
	// images as an earlier prompt and its answer (the same system prompt
	// and photo with another question, or a conversation sent back with
	// one more turn) copies that prefix's keys and values instead of
	// prefilling it again (Result.ReusedTokens). The least recently used go
	// first; a request's cache costs KV bytes per token (layers × 2 ×
	// key/value heads × head size × 4 bytes for a float32 cache: 45 KiB on
	// SmolVLM2-256M, 80 KiB on 500M) times its prompt and answer tokens.
	// 0 (the default) or negative keeps none: a process that answers one
	// request, or a phone, should not hold memory for requests that may
	// never come. `snapvlm serve --cache-mb` sets it (256 by default).
	PromptCacheMB int
	// Progress, when not nil, is called as Load goes through its stages
	// (loading the graphs takes most of the time).
	Progress func(LoadProgress)
}

// LoadProgress reports the progress of Load: Stage is about to be loaded,
// Done of Total stages are complete (Done == Total at the end). Stages are
// "config", "tokenizer", "runtime" and the graph names (GraphVision,
// GraphEmbed, GraphDecoder), whose File is the graph file.
type LoadProgress struct {
	Stage       string // the stage starting ("done" at the end)
	File        string // the file it reads, where there is one
	Done, Total int    // stages complete, of all
}

// Model is a loaded SmolVLM model. Safe for concurrent use.
type Model struct {
	dir     string
	cfg     *modelconfig.Model
	tok     *tokenizer.Tokenizer
	proc    *processor.Processor // prompts and image preprocessing
	imgOpts imageproc.Options
	// processor is the public face of proc, with the video settings.
	processor *Processor
	seqLen    int
	eos       map[int64]bool
	env       *ort.Env
	vis       *vision.Encoder // nil when loaded text-only
	emb       *embed.Embedder
	dec       *decoder.Decoder
	files     map[string]string // graph -> file used
	why       map[string]string // graph -> why that file
	chunk     int
	features  *featureCache
	prompts   *promptCache // nil when Options.PromptCacheMB is 0
	batch     *batcher     // nil: every generation decodes alone (Options.Parallel)
	loadTime  time.Duration
	life      lifecycle

	structured structured // vocabulary and compiled schemas for structured output
}

// Load opens a model directory in the Hugging Face layout (config files,
// tokenizer.json and onnx/*.onnx). Errors about the directory are
// *ModelError (errors.Is(err, ErrVariantMissing) for an absent variant); a
// missing ONNX Runtime library is ErrRuntimeMissing. ctx is checked between
// the stages (creating one ONNX Runtime session cannot be interrupted).
func Load(ctx context.Context, dir string, opts Options) (*Model, error) {
	m, err := load(ctx, dir, opts)
	if err != nil {
		var me *ModelError
		if !errors.As(err, &me) && !errors.Is(err, ErrRuntimeMissing) && ctx.Err() == nil {
			err = &ModelError{Dir: dir, Err: err}
		}
		return nil, err
	}
	return m, nil
}

func load(ctx context.Context, dir string, opts Options) (*Model, error) {
	start := time.Now()
	if _, err := kvCacheHalf(opts.KVCache); err != nil {
		return nil, err // before anything is loaded
	}
	st := &loadStages{ctx: ctx, progress: opts.Progress, total: 6}
	if opts.TextOnly {
		st.total = 5
	}
	m, err := openText(dir, opts, st)
	if err != nil {
		return nil, err
	}
	files, why, err := graphFiles(dir, opts)
	if err != nil {
		return nil, err
	}
	// The tokenizer loads on its own goroutine, beside the runtime and the
	// graphs (which need nothing of it).
	tokFile := filepath.Join(dir, modelconfig.TokenizerFile)
	if err := st.next("tokenizer", tokFile); err != nil {
		return nil, err
	}
	tokDone := make(chan error, 1)
	go func() { tokDone <- m.openTokenizer(dir, tokFile, opts) }()
	err = st.next("runtime", opts.ORTLib)
	if err == nil {
		m.env, err = openRuntime(opts.ORTLib)
	}
	if err == nil {
		err = m.openSessions(dir, opts, files, why, st)
	}
	if tokErr := <-tokDone; tokErr != nil {
		err = tokErr // the tokenizer's problem is the model directory's first
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	m.files, m.why = files, why
	m.loadTime = time.Since(start)
	st.next("done", "")
	return m, nil
}

// loadStages reports Load's progress and checks its context between stages.
type loadStages struct {
	ctx         context.Context
	progress    func(LoadProgress)
	done, total int
}

func (s *loadStages) next(name, file string) error {
	if s.progress != nil {
		s.progress(LoadProgress{Stage: name, File: file, Done: min(s.done, s.total), Total: s.total})
	}
	s.done++
	return s.ctx.Err()
}

// openText reads what a Model needs besides the graphs: the configs, the
// tokenizer, the prompt processor and the end tokens.
func openText(dir string, opts Options, st *loadStages) (*Model, error) {
	if err := st.next("config", filepath.Join(dir, modelconfig.ConfigFile)); err != nil {
		return nil, err
	}
	cfg, err := modelconfig.Load(dir)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{dir: dir, cfg: cfg, files: map[string]string{}, chunk: opts.PrefillChunk}
	if m.chunk <= 0 {
		m.chunk = 256
	}
	cacheSize := opts.FeatureCacheSize
	if cacheSize == 0 {
		cacheSize = 32
	}
	m.features = newFeatureCache(cacheSize)
	m.prompts = newPromptCache(opts.PromptCacheMB)
	if !opts.TextOnly {
		// What the vision encoder is checked against, from the configs (the
		// processor, made with the tokenizer, reads the same).
		if m.seqLen = cfg.ImageSeqLen(); m.seqLen <= 0 {
			return nil, &ModelError{Dir: dir, File: modelconfig.ProcessorFile, Field: "image_seq_len",
				Err: fmt.Errorf("image_seq_len is neither in %s nor computable from %s vision_config", modelconfig.ProcessorFile, modelconfig.ConfigFile)}
		}
		if m.imgOpts, err = imageproc.OptionsFromConfig(cfg.Preprocessor); err != nil {
			return nil, &ModelError{Dir: dir, File: modelconfig.PreprocessorFile, Err: err}
		}
	}
	return m, nil
}

// openTokenizer loads the tokenizer, the prompt processor and the end
// tokens (on its own goroutine during Load: it sets only the fields it
// names, and checks what the configs said of the image settings).
func (m *Model) openTokenizer(dir, tokFile string, opts Options) error {
	cfg := m.cfg
	var err error
	if m.tok, err = tokenizer.Load(tokFile); err != nil {
		return &ModelError{Dir: dir, File: modelconfig.TokenizerFile, Err: err}
	}
	if m.processor, err = newProcessor(cfg, m.tok, processor.Options{TextOnly: opts.TextOnly}); err != nil {
		return err
	}
	m.proc = m.processor.proc
	if opts.TextOnly {
		m.seqLen, m.imgOpts = m.proc.SeqLen, m.proc.Image
	} else if m.proc.SeqLen != m.seqLen || m.proc.Image != m.imgOpts {
		return fmt.Errorf("the processor's image settings (%d tokens, %+v) are not the configs' (%d, %+v)", m.proc.SeqLen, m.proc.Image, m.seqLen, m.imgOpts)
	}
	if m.eos, err = endTokens(cfg, m.tok); err != nil {
		return &ModelError{Dir: dir, File: modelconfig.GenerationFile, Field: "eos_token_id", Err: err}
	}
	if id := cfg.Config.ImageTokenID; !opts.TextOnly {
		if tokID, ok := m.tok.TokenToID(prompt.ImageToken); !ok || tokID != id {
			return &ModelError{Dir: dir, File: modelconfig.ConfigFile, Field: "image_token_id",
				Err: fmt.Errorf("config.json image_token_id is %d but the tokenizer's %s is %d", id, prompt.ImageToken, tokID)}
		}
	}
	return nil
}

// endTokens are the ids that end an answer: the configs' and
// <end_of_utterance>.
func endTokens(cfg *modelconfig.Model, tok *tokenizer.Tokenizer) (map[int64]bool, error) {
	eos := map[int64]bool{}
	for _, id := range cfg.EOSTokenIDs() {
		eos[id] = true
	}
	if id, ok := tok.TokenToID("<end_of_utterance>"); ok {
		eos[id] = true
	}
	if len(eos) == 0 {
		return nil, fmt.Errorf("no end-of-sequence token id in %s, %s or the tokenizer", modelconfig.GenerationFile, modelconfig.ConfigFile)
	}
	return eos, nil
}

// graphFiles picks the file of each graph for opts, with the reason.
func graphFiles(dir string, opts Options) (files, why map[string]string, err error) {
	files, why = map[string]string{}, map[string]string{}
	for _, g := range []struct{ graph, dtype string }{
		{GraphVision, firstNonEmpty(opts.VisionDtype, opts.Dtype)},
		{GraphEmbed, firstNonEmpty(opts.EmbedDtype, opts.Dtype)},
		{GraphDecoder, firstNonEmpty(opts.DecoderDtype, opts.Dtype)},
	} {
		if g.graph == GraphVision && opts.TextOnly {
			continue
		}
		f, err := graphFile(dir, g.graph, g.dtype)
		if err != nil {
			return nil, nil, err
		}
		files[g.graph] = f
		why[g.graph] = fileReason(g.graph, g.dtype, opts)
	}
	return files, why, nil
}

// graphCacheNote is added to a graph's FileReasons when its session was
// loaded from the optimised graph saved by an earlier load.
const graphCacheNote = "optimised graph loaded from the cache"

// openSessions creates the ONNX Runtime sessions of the three graphs
// (files and why may be updated for a rewritten vision encoder). The vision
// encoder loads on its own goroutine, beside the embedder and the decoder:
// creating a session is mostly single-threaded work (reading, and
// prepacking the weights for ONNX Runtime's matmul kernels).
func (m *Model) openSessions(dir string, opts Options, files, why map[string]string, st *loadStages) (err error) {
	base := ort.SessionOptions{IntraOpThreads: opts.Threads, Provider: opts.Provider, OptLevel: ort.OptLevel(opts.OptLevel)}
	// graphOpts are the options of one graph's session: the optimised-graph
	// cache's notes and warnings go to *reason. The probes of the rewrites
	// load with base, so they save no optimised copies of files they only
	// check.
	graphOpts := func(reason *string) ort.SessionOptions {
		so := base
		so.OptimizedCache = !opts.NoGraphCache
		so.Warn = func(err error) { *reason += "; warning: " + err.Error() }
		so.FromCache = func(string) { *reason += "; " + graphCacheNote }
		return so
	}
	t := m.cfg.Config.TextConfig
	refuse := func(graph, file string, err error) error {
		return &ModelError{Dir: dir, File: file, Err: refuseVariant(err, dir, graph, file, m.env.Version(), opts.Provider)}
	}
	if !opts.TextOnly {
		if err := st.next(GraphVision, files[GraphVision]); err != nil {
			return err
		}
		file, reason := files[GraphVision], why[GraphVision]
		var visErr error
		visDone := make(chan struct{})
		go func() {
			defer close(visDone)
			file, reason, visErr = m.openVision(dir, opts, base, file, reason, graphOpts, refuse)
		}()
		defer func() {
			<-visDone
			files[GraphVision], why[GraphVision] = file, reason
			if err == nil {
				err = visErr
			}
		}()
	}
	if err := st.next(GraphEmbed, files[GraphEmbed]); err != nil {
		return err
	}
	embWhy := why[GraphEmbed]
	m.emb, err = embed.New(m.env, files[GraphEmbed], graphOpts(&embWhy), t.HiddenSize)
	why[GraphEmbed] = embWhy
	if err != nil {
		return refuse(GraphEmbed, files[GraphEmbed], err)
	}
	dcfg := decoder.Config{
		Layers: t.NumHiddenLayers, KVHeads: t.NumKeyValueHeads, HeadDim: t.HeadDimension(), Hidden: t.HiddenSize, Vocab: t.VocabSize,
	}
	int8Acts := opts.DecoderInt8
	if q4, ok := defaultQ4Decoder(dir, m.env, opts); ok {
		files[GraphDecoder], int8Acts = q4, true
		why[GraphDecoder] = "default: q4 with int8 activations on snapvlm's 4-bit kernel, which runs on this CPU (else the first present of " + strings.Join(defaultOrder(GraphDecoder), ", ") + ")"
	}
	halfCache, err := kvCacheHalf(opts.KVCache)
	if err != nil {
		return err
	}
	if !opts.PlainAttention && t.NumAttentionHeads > t.NumKeyValueHeads && t.NumKeyValueHeads > 0 {
		var note string
		c := dcfg
		c.SharedCache = true
		own, ownErr := ownAttention(m.env, opts)
		var ownKernel bool
		files[GraphDecoder], note, dcfg.SharedCache, ownKernel = gqaDecoderFile(st.ctx, m.env, files[GraphDecoder], base, c, t.NumAttentionHeads, m.emb, own, !opts.unfused, halfCache)
		dcfg.PrefillTogether = dcfg.SharedCache && ownKernel
		if ownErr != nil {
			note += fmt.Sprintf(" (snapvlm's attention kernel is not available: %v)", ownErr)
		}
		why[GraphDecoder] += "; " + note
	} else if !opts.PlainAttention && !opts.unfused {
		var note string
		files[GraphDecoder], note = headDecoderFile(st.ctx, m.env, files[GraphDecoder], base, dcfg, m.emb)
		why[GraphDecoder] += "; " + note
	}
	decWhy := why[GraphDecoder]
	dso := graphOpts(&decWhy)
	if int8Acts {
		dso.MatMulNBitsAccuracy, dso.MatMulQ4 = 4, true
		if own, _ := m.env.Attention(); own && ort.MatMulQ4Vector() {
			decWhy += "; 4-bit matmuls with int8 activations (a scale per row and block of 32) on snapvlm's kernel: AVX-512 VNNI for steps"
			if ort.MatMulQ4Tiles() {
				decWhy += ", AMX tiles for prefills"
			}
		} else {
			decWhy += "; 4-bit matmuls with int8 activations (accuracy_level 4 rewrite, Options.DecoderInt8)"
		}
	}
	if err := st.next(GraphDecoder, files[GraphDecoder]); err != nil {
		return err
	}
	m.dec, err = decoder.New(m.env, files[GraphDecoder], dso, dcfg)
	if err != nil {
		why[GraphDecoder] = decWhy
		return refuse(GraphDecoder, files[GraphDecoder], err)
	}
	if int8Acts {
		// The session runs the int8-activation rewrite of the file.
		files[GraphDecoder] = m.dec.Path()
	}
	if m.dec.LastLogitsOnly() {
		decWhy += "; logits for the last position of a run only"
	}
	why[GraphDecoder] = decWhy
	if opts.Parallel > 1 {
		// A graph that quantizes activations with one scale per tensor
		// (the int8, uint8 and quantized variants) would give a row
		// logits that depend on the other rows of the batch, so its
		// answers would not be those the requests get alone.
		dq, err := dynamicallyQuantized(files[GraphDecoder])
		if err != nil {
			return fmt.Errorf("%s: %w", files[GraphDecoder], err)
		}
		switch {
		case dq:
			why[GraphDecoder] += "; each generation decodes alone: this variant quantizes activations with one scale for all rows, so a batched answer would depend on the others (q4, with or without Options.DecoderInt8, batches)"
		case !m.dec.Batchable():
			why[GraphDecoder] += fmt.Sprintf("; each generation decodes alone: batching %d needs the attention rewrite on a cache it appends to in place (snapvlm's kernel, or ONNX Runtime's on a float32 cache)", opts.Parallel)
		default:
			minRows := 0
			if dtypeOfFile(files[GraphDecoder], GraphDecoder) == "q4" && !int8Acts {
				// ONNX Runtime's exact 4-bit matmul dequantizes its weights for
				// more than one row: 2 to 4 rows cost 2.6-2.8x one row
				// (BenchmarkBatchStep, 256M-size q4), so 2 generations step
				// one by one, 3 or more together.
				minRows = 3
			}
			m.batch = newBatcher(m.dec, opts.Parallel, minRows, m.emb.Hidden(), m.chunk)
			why[GraphDecoder] += fmt.Sprintf("; up to %d generations decode together", opts.Parallel)
			if minRows > 1 {
				why[GraphDecoder] += fmt.Sprintf(" (at least %d at a time: the exact 4-bit matmuls cost several times more for more than one row; Options.DecoderInt8's do not)", minRows)
			}
		}
	}
	return nil
}

// kvCacheHalf reads Options.KVCache: whether a float32 cache is to be
// stored as float16.
func kvCacheHalf(kv string) (bool, error) {
	switch strings.ToLower(kv) {
	case "f16", "float16":
		return true, nil
	case "", "auto", "f32", "float32":
		return false, nil
	}
	return false, fmt.Errorf("KV cache type %q: want f16, f32 or auto", kv)
}

// openVision creates the vision encoder's session for openSessions (on its
// own goroutine: it sets m.vis and touches nothing else of m) and returns
// the file it loaded and why.
func (m *Model) openVision(dir string, opts Options, base ort.SessionOptions, file, why string,
	graphOpts func(*string) ort.SessionOptions, refuse func(graph, file string, err error) error) (string, string, error) {
	t := m.cfg.Config.TextConfig
	vcfg := vision.Config{TileSize: m.imgOpts.TileSize, ImageSeqLen: m.seqLen, Hidden: t.HiddenSize}
	var err error
	if opts.VisionInt8 {
		src := int8VisionSource(dir, file, firstNonEmpty(opts.VisionDtype, opts.Dtype))
		if file, why, err = int8VisionFile(context.Background(), m.env, src, base, vcfg, VisionInt8MinCosine); err != nil {
			return file, why, err
		}
	}
	if vcfg.FramesPerRun = opts.VisionBatch; vcfg.FramesPerRun <= 0 {
		if vcfg.FramesPerRun, err = defaultVisionBatch(file); err != nil {
			return file, why, err
		}
	}
	vso := graphOpts(&why)
	vso.NoMemPattern = true // see ort.SessionOptions.NoMemPattern: 0.1 GB off the peak
	if m.vis, err = vision.New(m.env, file, vso, vcfg); err != nil {
		return file, why, refuse(GraphVision, file, err)
	}
	return file, why, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" && x != "auto" {
			return x
		}
	}
	return ""
}

// defaultQ4Decoder returns the q4 decoder file when the default decoder is
// q4 with int8 activations on snapvlm's 4-bit kernel: no decoder variant
// asked for, the CPU provider, the kernel registered and its vector path
// usable on this CPU, and a q4 decoder with inline weights present.
// Measured against the int8 file that is the default elsewhere (README,
// Speed), it decodes 1.1-1.5x faster, loads in half the time with 0.13 GB
// less memory, batches, and prefills at 0.65-0.7x its rate, its logits
// nearer fp32's; without the kernel (ONNX Runtime's accuracy_level 4 path)
// it prefills at a third of int8's rate, so the order stays int8 first.
func defaultQ4Decoder(dir string, env *ort.Env, opts Options) (string, bool) {
	p := strings.ToLower(opts.Provider)
	if firstNonEmpty(opts.DecoderDtype, opts.Dtype) != "" || (p != "" && p != "cpu") || !ort.MatMulQ4Vector() {
		return "", false
	}
	if own, _ := env.Attention(); !own {
		return "", false
	}
	f, err := graphFile(dir, GraphDecoder, "q4")
	if err != nil {
		return "", false
	}
	// The kernel's rewrite of a graph whose weights are in external data
	// cannot be kept away from its data files, so it would be made again
	// at every load, with no optimised graph saved: such a model keeps the
	// order.
	data, unmap, err := onnx.MapFile(f)
	if err != nil {
		return "", false
	}
	defer unmap()
	if ext, err := onnx.UsesExternalData(data); err != nil || ext {
		return "", false
	}
	return f, true
}

// graphFile resolves onnx/<graph><suffix>.onnx for dtype ("" = default
// order), listing the variants present when the asked one is missing.
func graphFile(dir, graph, dtype string) (string, error) {
	present := Variants(dir, graph)
	if dtype != "" {
		if _, ok := modelconfig.DtypeSuffix(dtype); !ok {
			return "", fmt.Errorf("unknown dtype %q: want one of %s", dtype, strings.Join(modelconfig.Dtypes(), ", "))
		}
		rel := modelconfig.GraphPath(graph, dtype)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if _, err := os.Stat(p); err != nil {
			return "", &ModelError{Dir: dir, File: rel, Err: fmt.Errorf("%w: no %s variant of %s (%s missing); variants present: %s", ErrVariantMissing, dtype, graph, rel, listOrNone(present))}
		}
		return p, nil
	}
	for _, d := range defaultOrder(graph) {
		if slices.Contains(present, d) {
			return filepath.Join(dir, filepath.FromSlash(modelconfig.GraphPath(graph, d))), nil
		}
	}
	rel := modelconfig.GraphPath(graph, "fp32")
	return "", &ModelError{Dir: dir, File: rel, Err: fmt.Errorf("%w: no %s graph (%s missing, nor any other variant)", ErrVariantMissing, graph, rel)}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Variants lists the dtypes of graph present in a model directory.
func Variants(dir, graph string) []string {
	var out []string
	for _, d := range modelconfig.Dtypes() {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(modelconfig.GraphPath(graph, d)))); err == nil {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// Dir is the model directory.
func (m *Model) Dir() string { return m.dir }

// Files returns the graph files in use, keyed by graph name (GraphVision,
// GraphEmbed, GraphDecoder); a text-only Model has no GraphVision. The map
// is a copy.
func (m *Model) Files() map[string]string { return maps.Clone(m.files) }

// FileReasons says, by graph name, why the file in Files was chosen (the
// option or default that picked it, or a rewrite and its probe check).
func (m *Model) FileReasons() map[string]string { return m.why }

// Dtypes returns the variant of each graph in use ("fp32", "q4", ...),
// keyed by graph name like Files.
func (m *Model) Dtypes() map[string]string {
	out := map[string]string{}
	for g, f := range m.files {
		out[g] = dtypeOfFile(f, g)
	}
	return out
}

// LoadTime is how long Load took.
func (m *Model) LoadTime() time.Duration { return m.loadTime }

// ORTVersion is the version of the ONNX Runtime library in use.
func (m *Model) ORTVersion() string { return m.env.Version() }

// ImageSeqLen is the number of image tokens per tile.
func (m *Model) ImageSeqLen() int { return m.seqLen }

// Tokenize encodes text with the model's tokenizer as the prompt is
// encoded: no special tokens are added, and special-token strings in text
// (such as <image>) become their single ids.
func (m *Model) Tokenize(text string) []int64 { return m.tok.Encode(text) }

// Detokenize decodes ids to text as answers are decoded; with skipSpecial,
// special tokens (end tokens, <image>, ...) are left out.
func (m *Model) Detokenize(ids []int64, skipSpecial bool) string {
	return m.tok.Decode(ids, skipSpecial)
}

// TokenString returns the vocabulary entry of id (the token as
// tokenizer.json spells it, e.g. "Ġthe"), false for an unknown id.
func (m *Model) TokenString(id int64) (string, bool) { return m.tok.IDToToken(id) }

// VocabSize is the number of token ids the model's logits cover.
func (m *Model) VocabSize() int { return m.cfg.Config.TextConfig.VocabSize }

// MaxImageSize is the longest edge images are resized to before tiling
// (preprocessor_config.json size.longest_edge), the largest
// GenerateOptions.ImageSize; 0 for a model loaded text-only.
func (m *Model) MaxImageSize() int { return m.imgOpts.LongestEdge }

// ContextLength is the most tokens, prompt and answer together, the model
// takes (max_position_embeddings, or transformers' default of 2048 when the
// config leaves it out).
func (m *Model) ContextLength() int { return m.cfg.Config.TextConfig.Positions() }

// Close releases the sessions. It waits for running calls (Generate, Chat
// turns, PixelValues) to return — cancel their contexts to make that quick —
// and later calls return ErrClosed. Closing again does nothing.
func (m *Model) Close() error { return m.life.close(m.release) }

func (m *Model) release() error {
	m.prompts.close()
	var errs []error
	if m.vis != nil {
		errs = append(errs, m.vis.Close())
	}
	if m.emb != nil {
		errs = append(errs, m.emb.Close())
	}
	if m.batch != nil {
		m.batch.close()
	}
	if m.dec != nil {
		errs = append(errs, m.dec.Close())
	}
	return errors.Join(errs...)
}
