// Package testmodel writes SmolVLM-format models with random weights: the
// same files and ONNX I/O contracts as the Hugging Face SmolVLM/SmolVLM2
// repositories (spec §1, §5), so every engine test can run without the real
// weights.
//
// A model directory holds config.json, preprocessor_config.json,
// processor_config.json, generation_config.json, tokenizer.json,
// tokenizer_config.json (with prompt.SmolVLMTemplate as chat_template),
// special_tokens_map.json and onnx/{vision_encoder,embed_tokens,
// decoder_model_merged}{,_q4,_fp16}.onnx (and the other variants asked for).
//
// Graphs:
//   - vision_encoder: pixel_values float32 [batch_size, num_images, 3, M, M]
//     and pixel_attention_mask bool [batch_size, num_images, M, M] →
//     image_features float32 [num_frames, image_seq_len, text_hidden]. It
//     drops all-zero (padding) frames (keeping frame 0 if none is real),
//     masks padded patches, runs a SigLIP encoder (Conv patch embedding,
//     position embedding, pre-LN layers with standard-op attention and
//     gelu-tanh MLP, post LayerNorm), the pixel shuffle of spec §2.4 and a
//     bias-free Linear connector. Position ids are those of a full tile
//     (the bucketized ids of partially masked frames are not modelled).
//   - embed_tokens: input_ids int64 [batch_size, sequence_length] →
//     inputs_embeds float32 [batch_size, sequence_length, hidden] (Gather).
//   - decoder_model_merged: the onnxruntime-genai MultiHeadAttention layout:
//     inputs_embeds, attention_mask, position_ids, past_key_values.{i}.key/
//     value → logits, present.{i}.key/value, with SimplifiedLayerNormalization
//     (ONNX domain), com.microsoft SkipSimplifiedLayerNormalization,
//     RotaryEmbedding and MultiHeadAttention, grouped KV heads repeated with
//     Expand, a causal+padding bias built from attention_mask and the past
//     length read by the node /model/attn_mask_reformat/past_key_subgraph/Shape
//     (so omitting the past fails with "Missing Input: past_key_values.0.key"),
//     SiLU MLP, final norm and an untied lm_head.
//
// Variants: fp32 (no suffix); q4 (com.microsoft MatMulNBits, 4 bits,
// block 32, symmetric, for every weight MatMul of the vision encoder,
// connector and decoder incl. lm_head; the embedding Gather and the patch
// Conv stay float32, as in the real export); fp16 (weights stored as
// float16 and cast to float32 for compute, past/present KV float16; all
// other inputs and outputs stay float32 — transformers.js float16.py's
// keep_io_types, with the KV cache in float16 as SmolLM2's
// transformers.js_config.kv_cache_dtype says; consumers must read the KV
// dtype from the session metadata, as transformers.js v4 does). On request
// (ExtraVariants): q4f16 (float16 at every graph boundary), and the other
// quantizations the exports ship, in ONNX Runtime's operator structure
// (quant8.go): int8, uint8 and quantized (dynamic IntegerOps quantization:
// DynamicQuantizeLinear, MatMulInteger, ConvInteger for the patch Conv, a
// quantized embedding Gather) and bnb4 (MatMulBnb4, NF4). Their weights are
// not exact in 8 bits or NF4, so their outputs only approximate fp32's.
//
// Weights are seeded from Options.Seed and each weight's name, and are
// small integers times powers of two, exact in float16 and losslessly 4-bit
// quantizable: the three variants hold the same function, so their greedy
// outputs agree. Gains are chosen so that attention is sharp and the text
// embeddings are small: generated tokens depend on the image content and
// layout (see the sensitivity test).
//
// Large graphs (more than Options.ExternalDataBytes of weights, default
// 1 GiB) use ONNX external data (x.onnx + x.onnx_data), which ONNX Runtime
// loads only from a path.
package testmodel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
)

// Options tunes Generate.
type Options struct {
	// Variants to write: any of Variants and ExtraVariants; nil means
	// Variants.
	Variants []string
	// Seed makes the weights; the same seed gives the same files.
	Seed int64
	// TokenizerPath is the tokenizer.json to ship (for example the real
	// SmolVLM one). Empty means a small generated tokenizer.
	TokenizerPath string
	// GenerateTokenizer ships the generated tokenizer even when
	// TokenizerPath is set.
	GenerateTokenizer bool
	// ExternalDataBytes is the weight size above which a graph is written
	// with external data; 0 means 1 GiB.
	ExternalDataBytes int64
	// Progress, when set, is called before each file is written.
	Progress func(file string)
}

// Variants lists the supported variants in their usual order.
func Variants() []string { return []string{FP32, Q4, FP16} }

// ExtraVariants are written only when asked for: q4f16 carries embeddings,
// logits and image features across its graph boundaries as float16 (and
// its cache), to exercise consumers' float16 paths; int8, uint8, quantized
// and bnb4 are the exports' other quantizations (see quant8.go).
func ExtraVariants() []string { return []string{Q4F16, Int8, Uint8, Quantized, BNB4} }

// Generate writes the model preset (see Presets) to outDir, creating it.
func Generate(ctx context.Context, presetName, outDir string, opt Options) error {
	p, ok := presets[presetName]
	if !ok {
		return fmt.Errorf("testmodel: unknown preset %q (have %v)", presetName, Presets())
	}
	variants := opt.Variants
	if len(variants) == 0 {
		variants = Variants()
	}
	for _, v := range variants {
		if !slices.Contains(Variants(), v) && !slices.Contains(ExtraVariants(), v) {
			return fmt.Errorf("testmodel: unknown variant %q (have %v and %v)", v, Variants(), ExtraVariants())
		}
	}
	tok, err := loadTokenizer(opt)
	if err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	onnxDir := filepath.Join(outDir, "onnx")
	if err := os.MkdirAll(onnxDir, 0o755); err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	if err := writeConfigs(outDir, p, tok); err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	extBytes := opt.ExternalDataBytes
	if extBytes <= 0 {
		extBytes = 1 << 30
	}
	for _, v := range variants {
		for _, build := range graphBuilders {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("testmodel: %w", err)
			}
			g, err := build.fn(p, tok.vocabSize, opt.Seed, v)
			if err != nil {
				return fmt.Errorf("testmodel: building %s: %w", build.name, err)
			}
			graph, err := g.Graph()
			if err != nil {
				return fmt.Errorf("testmodel: building %s: %w", build.name, err)
			}
			m := onnx.NewModel(graph)
			m.ProducerName = "snapvlm testmodel"
			m.Metadata = [][2]string{{"snapvlm.testmodel.preset", p.name}, {"snapvlm.testmodel.seed", fmt.Sprint(opt.Seed)}}
			path := filepath.Join(onnxDir, build.name+suffix(v)+".onnx")
			if opt.Progress != nil {
				opt.Progress(path)
			}
			ext := onnxbuild.InitializerBytes(m) > extBytes
			if !ext {
				if err := removeStale(path + "_data"); err != nil {
					return fmt.Errorf("testmodel: %w", err)
				}
			}
			if err := onnxbuild.WriteFile(m, path, onnxbuild.WriteOptions{ExternalData: ext}); err != nil {
				return fmt.Errorf("testmodel: %w", err)
			}
		}
	}
	return nil
}

type graphBuilder struct {
	name string
	fn   func(p preset, vocab int, seed int64, variant string) (*gb, error)
}

var graphBuilders = []graphBuilder{
	{"vision_encoder", func(p preset, vocab int, seed int64, variant string) (*gb, error) {
		return buildVision(p, p.hidden, seed, variant)
	}},
	{"embed_tokens", buildEmbed},
	{"decoder_model_merged", buildDecoder},
}

// paramCounts returns the number of weights of each graph of a preset
// (fp32 variant; RoPE caches excluded) without writing anything.
func paramCounts(presetName string, vocab int) (map[string]int64, error) {
	p, ok := presets[presetName]
	if !ok {
		return nil, fmt.Errorf("testmodel: unknown preset %q", presetName)
	}
	counts := map[string]int64{}
	for _, b := range graphBuilders {
		g, err := b.fn(p, vocab, 0, FP32)
		if err != nil {
			return nil, err
		}
		if _, err := g.Graph(); err != nil {
			return nil, err
		}
		counts[b.name] = g.params
	}
	return counts, nil
}
