package testmodel

import (
	"math"
	"strconv"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
)

// pixelShuffle is SmolVLM's connector shuffle (spec §2.4) for x [K, G·G, D]
// with scale s: output [K, (G/s)², s·s·D] where row r·(G/s)+c holds the s×s
// patch block at rows s·r.., cols s·c.., channel dh·(s·D) + dw·D + e.
func pixelShuffle(g *onnxbuild.Builder, x string, side, dim, s int) string {
	G, D, S := int64(side), int64(dim), int64(s)
	x = g.Reshape(x, 0, G, G/S, S*D)     // s neighbouring columns concatenated
	x = g.Transpose(x, 0, 2, 1, 3)       // [K, G/s (c), G (h), s·D]
	x = g.Reshape(x, 0, G/S, G/S, S*S*D) // s neighbouring rows concatenated
	x = g.Transpose(x, 0, 2, 1, 3)       // [K, r, c, s·s·D]
	return g.Reshape(x, 0, G*G/(S*S), S*S*D)
}

// geluTanh is gelu_pytorch_tanh with standard ops:
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func geluTanh(g *onnxbuild.Builder, x string) string {
	x3 := g.Mul(g.Mul(x, x), x)
	inner := g.Mul(g.Add(x, g.Mul(x3, g.ScalarFloat(0.044715))), g.ScalarFloat(float32(math.Sqrt(2/math.Pi))))
	t := g.Op1("Tanh", []string{inner})
	return g.Mul(g.Mul(x, g.ScalarFloat(0.5)), g.Add(t, g.ScalarFloat(1)))
}

func buildVision(p preset, textHidden int, seed int64, variant string) (*gb, error) {
	g := newGB("vision_encoder", seed, variant)
	M := int64(p.tile)
	D := int64(p.vHidden)
	side := int64(p.gridSide())
	P := side * side
	pv := g.Input("pixel_values", onnx.Float, onnx.S("batch_size"), onnx.S("num_images"), onnx.N(3), onnx.N(p.tile), onnx.N(p.tile))
	pm := g.Input("pixel_attention_mask", onnx.Bool, onnx.S("batch_size"), onnx.S("num_images"), onnx.N(p.tile), onnx.N(p.tile))

	// Flatten frames; keep the real ones (not all exactly 0.0). When none
	// is real, keep frame 0 like transformers' get_image_features.
	g.Prefix = "/frames/"
	frames := g.Reshape(pv, -1, 3, M, M)
	masks := g.Reshape(pm, -1, M, M)
	amax := g.Op1("ReduceMax", []string{g.Op1("Abs", []string{frames})}, onnx.Ints("axes", 1, 2, 3), onnx.Int("keepdims", 0))
	isReal := g.Op1("Greater", []string{amax, g.ScalarFloat(0)})
	nFrames := g.Squeeze(g.Shape(frames, 0, 1), 0)
	idx := g.Op1("Range", []string{g.ScalarInt64(0), nFrames, g.ScalarInt64(1)})
	first := g.Op1("Equal", []string{idx, g.ScalarInt64(0)})
	anyReal := g.Op1("ReduceMax", []string{g.Cast(isReal, onnx.Float)}, onnx.Int("keepdims", 0))
	none := g.Op1("Less", []string{anyReal, g.ScalarFloat(0.5)})
	keep := g.Op1("Or", []string{isReal, g.Op1("And", []string{first, none})})
	sel := g.Squeeze(g.Op1("NonZero", []string{keep}), 0)
	frames = g.Gather(frames, sel, 0)
	masks = g.Gather(masks, sel, 0)

	// Patch mask → additive attention bias [K, 1, 1, P]: a patch is seen iff
	// any of its pixels is real.
	g.Prefix = "/patch_mask/"
	pmask := g.Op1("MaxPool", []string{g.Unsqueeze(g.Cast(masks, onnx.Float), 1)},
		onnx.Ints("kernel_shape", int64(p.patch), int64(p.patch)), onnx.Ints("strides", int64(p.patch), int64(p.patch)))
	pmask = g.Reshape(pmask, 0, 1, 1, P)
	bias := g.Mul(g.Sub(pmask, g.ScalarFloat(1)), g.ScalarFloat(math.MaxFloat32))

	g.Prefix = "/embeddings/"
	pw := gridTensor(seed, "vision.embeddings.patch_embedding.weight", []int64{D, 3, int64(p.patch), int64(p.patch)}, 0,
		vGainPatch/math.Sqrt(float64(3*p.patch*p.patch)))
	patchB := g.param(gridTensor(seed, "vision.embeddings.patch_embedding.bias", []int64{D}, 0, vBiasStd))
	convAttrs := []onnx.Attr{onnx.Ints("kernel_shape", int64(p.patch), int64(p.patch)), onnx.Ints("strides", int64(p.patch), int64(p.patch))}
	var x string
	if g.eightBit() {
		// ConvInteger without bias, then the bias added per channel, as
		// ONNX Runtime's dynamic ConvInteger quantizer writes it.
		x = g.integerOp("ConvInteger", frames, pw, "", convAttrs...)
		x = g.Add(x, g.Reshape(patchB, 1, D, 1, 1))
	} else {
		x = g.Op1("Conv", []string{frames, g.param(pw), patchB}, convAttrs...)
	}
	x = g.Transpose(g.Reshape(x, 0, D, P), 0, 2, 1)
	// Full tiles: position ids are 0..P-1, i.e. the whole table in order.
	x = g.Add(x, g.param(gridTensor(seed, "vision.embeddings.position_embedding.weight", []int64{P, D}, 0, vPosStd)))

	eps := onnx.Flt("epsilon", 1e-6)
	ln := func(x, name string) string {
		w := g.param(gridTensor(seed, name+".weight", []int64{D}, 1, normStd))
		b := g.param(gridTensor(seed, name+".bias", []int64{D}, 0, vBiasStd))
		return g.Op1("LayerNormalization", []string{x, w, b}, onnx.Int("axis", -1), eps)
	}
	dense := func(x, name string, k, n int, gain float64) string {
		y := g.linear(x, name+".weight", k, n, gain)
		return g.Add(y, g.param(gridTensor(seed, name+".bias", []int64{int64(n)}, 0, vBiasStd)))
	}
	H := int64(p.vHeads)
	hd := D / H
	for l := 0; l < p.vLayers; l++ {
		pre := "vision.encoder.layers." + strconv.Itoa(l) + "."
		g.Prefix = "/encoder/layers." + strconv.Itoa(l) + "/"
		h := ln(x, pre+"layer_norm1")
		q := g.Transpose(g.Reshape(dense(h, pre+"self_attn.q_proj", p.vHidden, p.vHidden, gainQK), 0, 0, H, hd), 0, 2, 1, 3)
		k := g.Transpose(g.Reshape(dense(h, pre+"self_attn.k_proj", p.vHidden, p.vHidden, gainQK), 0, 0, H, hd), 0, 2, 3, 1)
		v := g.Transpose(g.Reshape(dense(h, pre+"self_attn.v_proj", p.vHidden, p.vHidden, gainV), 0, 0, H, hd), 0, 2, 1, 3)
		scores := g.Add(g.Mul(g.MatMul(q, k), g.ScalarFloat(float32(1/math.Sqrt(float64(hd))))), bias)
		ctx := g.MatMul(g.Softmax(scores, -1), v)
		ctx = g.Reshape(g.Transpose(ctx, 0, 2, 1, 3), 0, 0, D)
		x = g.Add(x, dense(ctx, pre+"self_attn.out_proj", p.vHidden, p.vHidden, gainO))
		h = ln(x, pre+"layer_norm2")
		h = geluTanh(g.Builder, dense(h, pre+"mlp.fc1", p.vHidden, p.vMLP, gainMLP))
		x = g.Add(x, dense(h, pre+"mlp.fc2", p.vMLP, p.vHidden, gainMLP))
	}
	g.Prefix = "/post_layernorm/"
	x = ln(x, "vision.post_layernorm")
	g.Prefix = "/connector/"
	x = pixelShuffle(g.Builder, x, int(side), p.vHidden, p.scale)
	in := p.vHidden * p.scale * p.scale
	x = g.linear(x, "connector.modality_projection.proj.weight", in, textHidden, vGainConn)
	if g.halfIO() {
		x = g.Cast(x, onnx.Float16)
	}
	g.OutputAs(x, "image_features", g.ioType(), onnx.S("num_frames"), onnx.N(p.imageSeqLen()), onnx.N(textHidden))
	return g, nil
}
