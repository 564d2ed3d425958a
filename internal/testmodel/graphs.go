package testmodel

import (
	"fmt"
	"math"
	"strconv"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
)

// Variant names (file suffixes: "", "_q4", "_fp16", "_q4f16"; see also
// quant8.go).
const (
	FP32  = "fp32"
	Q4    = "q4"
	FP16  = "fp16"
	Q4F16 = "q4f16"
)

// suffix returns the file name suffix of a variant, as the exports name it.
func suffix(variant string) string {
	s, _ := modelconfig.DtypeSuffix(variant)
	return s
}

// Gains of the random weights: output standard deviation of each matrix for
// unit-variance input. Attention logits are made fairly sharp and text
// embeddings small, so that the last position's state is dominated by what
// it attends to (mostly image features, at RoPE-dependent positions): the
// generated tokens then depend on the image content and its layout.
const (
	gainTextEmbed = 0.25
	gainQK        = 2.0
	gainV         = 1.0
	gainO         = 1.0
	gainMLP       = 1.0
	gainLMHead    = 4.0
	normStd       = 0.1
	vGainPatch    = 1.0
	vPosStd       = 1.0
	vBiasStd      = 0.1
	vGainConn     = 1.0
)

// gb builds one graph of one variant; weights go through it so that the
// variant decides their storage (float32, float16 + Cast, 4-bit).
type gb struct {
	*onnxbuild.Builder
	graph   string
	seed    int64
	variant string
	params  int64                // number of weight elements (not RoPE caches)
	dq      map[string][3]string // activation -> its DynamicQuantizeLinear outputs
}

func newGB(name string, seed int64, variant string) *gb {
	return &gb{Builder: onnxbuild.New(name), graph: name, seed: seed, variant: variant, dq: map[string][3]string{}}
}

// quantized reports whether weight matmuls are 4-bit MatMulNBits.
func (g *gb) quantized() bool { return g.variant == Q4 || g.variant == Q4F16 }

// halfKV reports whether past/present are float16.
func (g *gb) halfKV() bool { return g.variant == FP16 || g.variant == Q4F16 }

// halfIO reports whether embeddings, logits and image features cross the
// graph boundary as float16 (q4f16: the most float16 an export can have, so
// that consumers' float16 paths are exercised).
func (g *gb) halfIO() bool { return g.variant == Q4F16 }

// ioType is the element type of the float graph inputs and outputs.
func (g *gb) ioType() onnx.DataType {
	if g.halfIO() {
		return onnx.Float16
	}
	return onnx.Float
}

// param adds a weight used in float32 compute: stored as float32, or as
// float16 followed by a Cast in the fp16 variant.
func (g *gb) param(w weight) string {
	g.params += w.elements()
	if g.variant == FP16 {
		return g.Cast(g.Init(float16Tensor(w)), onnx.Float)
	}
	return g.Init(float32Tensor(w))
}

// buffer adds a non-parameter constant (kept float32 in every variant).
func (g *gb) buffer(w weight) string { return g.Init(float32Tensor(w)) }

// linear is x @ W for a [k, n] weight: MatMul, or MatMulNBits in q4.
func (g *gb) linear(x, name string, k, n int, gain float64) string {
	return g.linearTo(x, name, k, n, gain, "")
}

// linearTo is linear writing to the value out (generated when empty).
func (g *gb) linearTo(x, name string, k, n int, gain float64, out string) string {
	w := gridMatrix(g.seed, name, k, n, gain)
	switch {
	case g.eightBit():
		return g.integerOp("MatMulInteger", x, w, out)
	case g.variant == BNB4:
		return g.bnb4MatMul(x, w, out)
	}
	if out == "" {
		out = g.Unique("MatMul/output_0")
	}
	if g.quantized() {
		g.params += w.elements()
		bT, sT := q4Tensors(w)
		g.NodeTo(onnx.MicrosoftDomain, "MatMulNBits", []string{x, g.Init(bT), g.Init(sT)}, nil,
			onnx.Int("K", int64(k)), onnx.Int("N", int64(n)), onnx.Int("bits", 4), onnx.Int("block_size", qBlock))
	} else {
		g.NodeTo("", "MatMul", []string{x, g.param(w)}, nil)
	}
	// The output was claimed above (or is new); attach it to the node.
	g.SetLastOutputs(out)
	return out
}

// ---------------------------------------------------------------------------
// embed_tokens

func buildEmbed(p preset, vocab int, seed int64, variant string) (*gb, error) {
	g := newGB("embed_tokens", seed, variant)
	ids := g.Input("input_ids", onnx.Int64, onnx.S("batch_size"), onnx.S("sequence_length"))
	w := gridTensor(seed, "model.embed_tokens.weight", []int64{int64(vocab), int64(p.hidden)}, 0, gainTextEmbed)
	var table string
	g.params += w.elements()
	switch {
	case variant == FP16:
		table = g.Init(float16Tensor(w))
	case g.eightBit():
		// ONNX Runtime's GatherQuant quantizes the table like an
		// activation (uint8, asymmetric) and dequantizes the rows.
		q, s, z := q8Tensors(w, onnx.Uint8)
		gq := g.Gather(g.Init(q), ids, 0)
		out := g.Op1("DequantizeLinear", []string{gq, g.Init(s), g.Init(z)})
		g.OutputAs(out, "inputs_embeds", g.ioType(), onnx.S("batch_size"), onnx.S("sequence_length"), onnx.N(p.hidden))
		return g, nil
	default:
		// The real q4 and bnb4 exports leave the embedding Gather in float32.
		table = g.Init(float32Tensor(w))
	}
	out := g.Gather(table, ids, 0)
	if variant == FP16 {
		out = g.Cast(out, onnx.Float)
	}
	if g.halfIO() {
		out = g.Cast(out, onnx.Float16)
	}
	g.OutputAs(out, "inputs_embeds", g.ioType(), onnx.S("batch_size"), onnx.S("sequence_length"), onnx.N(p.hidden))
	return g, nil
}

// ---------------------------------------------------------------------------
// decoder_model_merged

// ropeCaches returns cos and sin caches [maxPos, headDim/2] of Llama's
// non-interleaved rotary embedding.
func ropeCaches(p preset) (cos, sin []float32) {
	half := p.headDim / 2
	cos = make([]float32, p.maxPos*half)
	sin = make([]float32, p.maxPos*half)
	for pos := 0; pos < p.maxPos; pos++ {
		for i := 0; i < half; i++ {
			inv := math.Pow(p.ropeTheta, -2*float64(i)/float64(p.headDim))
			a := float64(pos) * inv
			cos[pos*half+i] = float32(math.Cos(a))
			sin[pos*half+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

func buildDecoder(p preset, vocab int, seed int64, variant string) (*gb, error) {
	g := newGB("decoder_model_merged", seed, variant)
	kvType := onnx.Float
	if g.halfKV() {
		kvType = onnx.Float16
	}
	B, S, T, P := onnx.S("batch_size"), onnx.S("sequence_length"), onnx.S("total_sequence_length"), onnx.S("past_sequence_length")
	emb := g.Input("inputs_embeds", g.ioType(), B, S, onnx.N(p.hidden))
	if g.halfIO() {
		emb = g.Cast(emb, onnx.Float)
	}
	mask := g.Input("attention_mask", onnx.Int64, B, T)
	pos := g.Input("position_ids", onnx.Int64, B, S)
	past := make([][2]string, p.layers)
	for i := range past {
		for j, kv := range []string{"key", "value"} {
			past[i][j] = g.Input(fmt.Sprintf("past_key_values.%d.%s", i, kv), kvType, B, onnx.N(p.kvHeads), P, onnx.N(p.headDim))
		}
	}

	// attentionBias builds the additive bias [B, 1, S, T]: causal over
	// past+S positions and padding from attention_mask, as the builder's
	// attn_mask_reformat does. The past length is read from
	// past_key_values.0.key, so leaving the past out fails at that Shape
	// node, like the real export. It is built right before the first
	// attention node so that ONNX Runtime's default execution order (a
	// reverse DFS that follows the latest-added input first) runs the Shape
	// node before any Concat reads the past.
	attentionBias := func() string {
		prefix := g.Prefix
		defer func() { g.Prefix = prefix }()
		g.Prefix = "/model/attn_mask_reformat/"
		pastLen := "/model/attn_mask_reformat/past_key_subgraph/Shape/output_0"
		g.NamedNode("/model/attn_mask_reformat/past_key_subgraph/Shape", "", "Shape", []string{past[0][0]}, []string{pastLen}, onnx.Int("start", 2), onnx.Int("end", 3))
		seqLen := g.Shape(emb, 1, 2)
		pastS := g.Squeeze(pastLen, 0)
		totalS := g.Squeeze(g.Add(pastLen, seqLen), 0)
		qPos := g.Op1("Range", []string{pastS, totalS, g.ScalarInt64(1)})
		kPos := g.Op1("Range", []string{g.ScalarInt64(0), totalS, g.ScalarInt64(1)})
		causal := g.Op1("LessOrEqual", []string{g.Unsqueeze(kPos, 0), g.Unsqueeze(qPos, 1)})
		padOK := g.Unsqueeze(g.Cast(mask, onnx.Bool), 1, 2)
		allowed := g.Op1("And", []string{causal, padOK})
		return g.Where(allowed, g.ScalarFloat(0), g.ScalarFloat(-math.MaxFloat32))
	}
	var attnBias string

	cos, sin := ropeCaches(p)
	half := int64(p.headDim / 2)
	g.Prefix = "/model/rotary_emb/"
	cosC := g.buffer(fixedTensor("cos_cache", []int64{int64(p.maxPos), half}, cos))
	sinC := g.buffer(fixedTensor("sin_cache", []int64{int64(p.maxPos), half}, sin))

	eps := onnx.Flt("epsilon", 1e-5)
	normW := func(name string) string {
		return g.param(gridTensor(seed, name, []int64{int64(p.hidden)}, 1, normStd))
	}
	var x, residual string
	rep := int64(p.heads / p.kvHeads)
	qDim, kvDim := p.heads*p.headDim, p.kvHeads*p.headDim
	var mlpOut string
	var presents []string
	for l := 0; l < p.layers; l++ {
		pre := "model.layers." + strconv.Itoa(l) + "."
		g.Prefix = "/model/layers." + strconv.Itoa(l) + "/"
		if l == 0 {
			x = g.Op1("SimplifiedLayerNormalization", []string{emb, normW(pre + "input_layernorm.weight")}, onnx.Int("axis", -1), eps)
			residual = emb
		} else {
			outs := g.DomainOp(onnx.MicrosoftDomain, "SkipSimplifiedLayerNormalization", []string{mlpOut, residual, normW(pre + "input_layernorm.weight")}, 4, eps)
			x, residual = outs[0], outs[3]
		}
		q := g.linear(x, pre+"attn.q_proj.MatMul.weight", p.hidden, qDim, gainQK)
		k := g.linear(x, pre+"attn.k_proj.MatMul.weight", p.hidden, kvDim, gainQK)
		v := g.linear(x, pre+"attn.v_proj.MatMul.weight", p.hidden, kvDim, gainV)
		q = g.MS1("RotaryEmbedding", []string{q, pos, cosC, sinC}, onnx.Int("interleaved", 0), onnx.Int("num_heads", int64(p.heads)))
		k = g.MS1("RotaryEmbedding", []string{k, pos, cosC, sinC}, onnx.Int("interleaved", 0), onnx.Int("num_heads", int64(p.kvHeads)))
		var full [2]string
		for j, cur := range []string{k, v} {
			bnsh := g.Transpose(g.Reshape(cur, 0, 0, int64(p.kvHeads), int64(p.headDim)), 0, 2, 1, 3)
			if g.halfKV() {
				bnsh = g.Cast(bnsh, onnx.Float16)
			}
			// Presents are the Concat outputs themselves (no Identity), as in
			// the real graph: ONNX Runtime's default execution order then
			// reaches the past-length Shape node first.
			name := fmt.Sprintf("present.%d.%s", l, []string{"key", "value"}[j])
			g.NodeTo("", "Concat", []string{past[l][j], bnsh}, []string{name}, onnx.Int("axis", 2))
			presents = append(presents, name)
			f := name
			if g.halfKV() {
				f = g.Cast(name, onnx.Float)
			}
			// Repeat each kv head for its rep query heads (Llama repeat_kv).
			if rep > 1 {
				f = g.Op1("Expand", []string{g.Unsqueeze(f, 2), g.ConstInt64(1, 1, rep, 1, 1)})
				f = g.Reshape(f, 0, int64(p.heads), -1, int64(p.headDim))
			}
			full[j] = f
		}
		if attnBias == "" {
			attnBias = attentionBias()
		}
		attn := g.MS1("MultiHeadAttention", []string{q, full[0], full[1], "", "", attnBias}, onnx.Int("num_heads", int64(p.heads)))
		o := g.linear(attn, pre+"attn.o_proj.MatMul.weight", qDim, p.hidden, gainO)
		outs := g.DomainOp(onnx.MicrosoftDomain, "SkipSimplifiedLayerNormalization", []string{o, residual, normW(pre + "post_attention_layernorm.weight")}, 4, eps)
		x, residual = outs[0], outs[3]
		gate := g.linear(x, pre+"mlp.gate_proj.MatMul.weight", p.hidden, p.mlp, gainMLP)
		up := g.linear(x, pre+"mlp.up_proj.MatMul.weight", p.hidden, p.mlp, gainMLP)
		act := g.Mul(g.Mul(gate, g.Sigmoid(gate)), up)
		mlpOut = g.linear(act, pre+"mlp.down_proj.MatMul.weight", p.mlp, p.hidden, gainMLP)
	}
	g.Prefix = "/model/norm/"
	outs := g.DomainOp(onnx.MicrosoftDomain, "SkipSimplifiedLayerNormalization", []string{mlpOut, residual, normW("model.norm.weight")}, 4, eps)
	g.Prefix = "/lm_head/"
	if g.halfIO() {
		g.NodeTo("", "Cast", []string{g.linear(outs[0], "lm_head.MatMul.weight", p.hidden, vocab, gainLMHead)}, []string{"logits"}, onnx.Int("to", int64(onnx.Float16)))
	} else {
		g.linearTo(outs[0], "lm_head.MatMul.weight", p.hidden, vocab, gainLMHead, "logits")
	}
	g.Output("logits", g.ioType(), B, S, onnx.N(vocab))
	for _, name := range presents {
		g.Output(name, kvType, B, onnx.N(p.kvHeads), T, onnx.N(p.headDim))
	}
	return g, nil
}
