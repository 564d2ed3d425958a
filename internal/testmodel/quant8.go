package testmodel

import (
	"encoding/binary"
	"math"

	"github.com/snapvlm/snapvlm/internal/onnx"
)

// The 8-bit and bnb4 variants, written as ONNX Runtime's quantizers write
// them (transformers.js scripts/quantize.py, spec §5.4):
//
//   - int8 / uint8 / quantized: dynamic ("IntegerOps") quantization. Every
//     MatMul with a constant weight becomes DynamicQuantizeLinear (on the
//     activation, shared by the MatMuls that read it) → MatMulInteger →
//     Cast → Mul by activation scale × weight scale; the patch Conv becomes
//     the same chain around ConvInteger, its bias added after; the embedding
//     Gather reads a quantized table and is followed by DequantizeLinear.
//     Weights are quantized per tensor, symmetric (zero point 0, scale
//     max|w|/127) for int8 and asymmetric (scale range/255) for uint8; the
//     Gather table is quantized like an activation (uint8, asymmetric), as
//     ONNX Runtime's GatherQuant does. MatMuls of two activations (the
//     vision attention) stay float (MatMulConstBOnly).
//   - quantized ("q8"): uint8 weights for graphs with a Conv or
//     MultiHeadAttention node (vision encoder, decoder), int8 otherwise.
//   - bnb4: com.microsoft MatMulBnb4, NF4 (quant_type 1), blocks of 64 over
//     the transposed weight; Conv and Gather stay float.

// Extra variant names.
const (
	Int8      = "int8"
	Uint8     = "uint8"
	Quantized = "quantized"
	BNB4      = "bnb4"
)

// eightBit reports whether the variant is an IntegerOps dynamic quantization.
func (g *gb) eightBit() bool {
	return g.variant == Int8 || g.variant == Uint8 || g.variant == Quantized
}

// weightType is the element type of 8-bit weights in this graph.
func (g *gb) weightType() onnx.DataType {
	switch g.variant {
	case Int8:
		return onnx.Int8
	case Quantized:
		if g.graph == "embed_tokens" {
			return onnx.Int8
		}
	}
	return onnx.Uint8
}

// dynQuant returns DynamicQuantizeLinear's outputs (uint8 value, scale,
// zero point) for the activation x, adding the node once per activation.
func (g *gb) dynQuant(x string) [3]string {
	if q, ok := g.dq[x]; ok {
		return q
	}
	outs := [3]string{x + "_quantized", x + "_scale", x + "_zero_point"}
	g.NamedNode(x+"_QuantizeLinear", "", "DynamicQuantizeLinear", []string{x}, outs[:])
	g.dq[x] = outs
	return outs
}

// integerOp adds the chain op(x_q, w_q, x_zp, w_zp) → Cast → Mul(scales)
// for a weight quantized to g.weightType(), writing the Mul to out (new
// when empty), and returns out.
func (g *gb) integerOp(op, x string, w weight, out string, attrs ...onnx.Attr) string {
	g.params += w.elements()
	xq := g.dynQuant(x)
	wq, ws, wzp := q8Tensors(w, g.weightType())
	wqN, wsN, wzpN := g.Init(wq), g.Init(ws), g.Init(wzp)
	acc := g.Op1(op, []string{xq[0], wqN, xq[2], wzpN}, attrs...)
	scales := g.Mul(xq[1], wsN)
	if out == "" {
		out = g.Unique("Mul/output_0")
	}
	g.NodeTo("", "Mul", []string{g.Cast(acc, onnx.Float), scales}, nil)
	g.SetLastOutputs(out)
	return out
}

// bnb4MatMul adds MatMulBnb4 for x @ w ([K, N]) writing to out.
func (g *gb) bnb4MatMul(x string, w weight, out string) string {
	g.params += w.elements()
	k, n := w.dims[0], w.dims[1]
	bT, absT := bnb4Tensors(w)
	if out == "" {
		out = g.Unique("MatMulBnb4/output_0")
	}
	g.NodeTo(onnx.MicrosoftDomain, "MatMulBnb4", []string{x, g.Init(bT), g.Init(absT)}, nil,
		onnx.Int("K", k), onnx.Int("N", n), onnx.Int("block_size", bnbBlock), onnx.Int("quant_type", 1))
	g.SetLastOutputs(out)
	return out
}

// q8Params are ONNX Runtime's per-tensor parameters for values in
// [rmin, rmax]: symmetric int8 (qmin -127) or asymmetric uint8.
func q8Params(rmin, rmax float32, t onnx.DataType) (scale float32, zp int) {
	rmin, rmax = min(rmin, 0), max(rmax, 0)
	if t == onnx.Int8 {
		a := max(-rmin, rmax)
		if a == 0 {
			return 1, 0
		}
		return a / 127, 0
	}
	if rmax == rmin {
		return 1, 0
	}
	scale = (rmax - rmin) / 255
	zp = int(math.RoundToEven(float64(-rmin / scale)))
	return scale, max(0, min(255, zp))
}

// q8Tensors quantizes a weight per tensor to t (Int8 or Uint8): the data
// (name_quantized), its scale (name_scale) and zero point (name_zero_point).
func q8Tensors(w weight, t onnx.DataType) (data, scale, zp *onnx.Tensor) {
	var s float32
	var z int
	ready := false
	params := func(v []float32) {
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, x := range v {
			lo, hi = min(lo, x), max(hi, x)
		}
		s, z = q8Params(lo, hi, t)
		ready = true
	}
	gen := func() []float32 {
		v := make([]float32, w.elements())
		w.gen(v)
		return v
	}
	data = &onnx.Tensor{Name: w.name + "_quantized", Type: t, Dims: w.dims, Fill: func(dst []byte) {
		v := gen()
		params(v)
		inv := 1 / s
		lo, hi := 0, 255
		if t == onnx.Int8 {
			lo, hi = -128, 127
		}
		parallel(len(v), func(a, b int) {
			for i := a; i < b; i++ {
				q := int(math.RoundToEven(float64(v[i]*inv))) + z
				dst[i] = byte(max(lo, min(hi, q))) // two's complement for int8
			}
		})
	}}
	ensure := func() {
		if !ready {
			params(gen())
		}
	}
	scale = &onnx.Tensor{Name: w.name + "_scale", Type: onnx.Float, Fill: func(dst []byte) {
		ensure()
		binary.LittleEndian.PutUint32(dst, math.Float32bits(s))
	}}
	zp = &onnx.Tensor{Name: w.name + "_zero_point", Type: t, Fill: func(dst []byte) {
		ensure()
		dst[0] = byte(z)
	}}
	return data, scale, zp
}

// bnbBlock is MatMulBnb4's block size in the exports.
const bnbBlock = 64

// nf4 are the NormalFloat4 code values (bitsandbytes, ONNX Runtime's
// dequantize table for quant_type 1).
var nf4 = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// nf4Code returns the nearest NF4 code of v in [-1, 1].
func nf4Code(v float32) byte {
	best, bd := 0, float32(math.Inf(1))
	for i, c := range nf4 {
		if d := abs32(v - c); d < bd {
			best, bd = i, d
		}
	}
	return byte(best)
}

// bnb4Tensors quantizes a [K, N] weight as ONNX Runtime's
// MatMulBnb4Quantizer does: the transpose [N, K] is flattened and cut into
// blocks of 64, each scaled by its largest magnitude (absmax) and mapped to
// the nearest NF4 code, two codes per byte with the first in the high
// nibble.
func bnb4Tensors(w weight) (bT, absT *onnx.Tensor) {
	k, n := int(w.dims[0]), int(w.dims[1])
	numel := k * n
	blocks := (numel + bnbBlock - 1) / bnbBlock
	var cached []float32
	quant := func() ([]byte, []float32) {
		v := make([]float32, numel)
		w.gen(v)
		t := make([]float32, numel)
		parallel(n, func(lo, hi int) {
			for c := lo; c < hi; c++ {
				for r := 0; r < k; r++ {
					t[c*k+r] = v[r*n+c]
				}
			}
		})
		packed := make([]byte, (numel+1)/2)
		absmax := make([]float32, blocks)
		parallel(blocks, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				end := min(numel, (b+1)*bnbBlock)
				var m float32
				for _, x := range t[b*bnbBlock : end] {
					m = max(m, abs32(x))
				}
				absmax[b] = m
				inv := float32(0)
				if m != 0 {
					inv = 1 / m
				}
				for i := b * bnbBlock; i < end; i += 2 {
					hiC := nf4Code(t[i] * inv)
					loC := nf4Code(0)
					if i+1 < end {
						loC = nf4Code(t[i+1] * inv)
					}
					packed[i/2] = hiC<<4 | loC
				}
			}
		})
		return packed, absmax
	}
	bT = &onnx.Tensor{Name: w.name + "_Bnb4", Type: onnx.Uint8, Dims: []int64{int64((numel + 1) / 2)}, Fill: func(dst []byte) {
		p, a := quant()
		copy(dst, p)
		cached = a
	}}
	absT = &onnx.Tensor{Name: w.name + "_absmax", Type: onnx.Float, Dims: []int64{int64(blocks)}, Fill: func(dst []byte) {
		a := cached
		if a == nil {
			_, a = quant()
		}
		cached = nil
		for i, f := range a {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	}}
	return bT, absT
}
