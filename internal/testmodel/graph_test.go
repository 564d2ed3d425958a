package testmodel

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// runGraph writes g (float32 input x of the given shape) and runs it in ONNX
// Runtime, returning the float32 output y of shape outShape.
func runGraph(t *testing.T, b *onnxbuild.Builder, x []float32, inShape, outShape []int64) []float32 {
	t.Helper()
	g, err := b.Graph()
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/g.onnx"
	if err := onnxbuild.WriteFile(onnx.NewModel(g), path, onnxbuild.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	s, err := env.NewSession(path, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := int64(1)
	for _, d := range outShape {
		n *= d
	}
	y := make([]float32, n)
	in := must[*ort.Tensor](t)(ort.NewFloat32(inShape, x))
	out := must[*ort.Tensor](t)(ort.NewFloat32(outShape, y))
	defer in.Close()
	defer out.Close()
	if err := s.Run(context.Background(), []*ort.Tensor{in}, []*ort.Tensor{out}); err != nil {
		t.Fatal(err)
	}
	return y
}

// TestPixelShuffle checks the connector shuffle against the index formula
// of spec §2.4: output row i = r·(G/s) + c holds the s×s patch block at
// rows s·r+dh, cols s·c+dw, channel m = dh·(s·D) + dw·D + e.
func TestPixelShuffle(t *testing.T) {
	tests := []struct{ side, dim, scale int }{
		{4, 2, 2},
		{32, 3, 4}, // 512-px family layout
		{27, 2, 3}, // 384-px family layout
	}
	for _, tc := range tests {
		G, D, s := tc.side, tc.dim, tc.scale
		K := 2
		// x[k, p, e] = a unique code of (k, patch row, patch col, e).
		code := func(k, h, w, e int) float32 { return float32(((k*G+h)*G+w)*D + e) }
		x := make([]float32, K*G*G*D)
		for k := 0; k < K; k++ {
			for h := 0; h < G; h++ {
				for w := 0; w < G; w++ {
					for e := 0; e < D; e++ {
						x[((k*G+h)*G+w)*D+e] = code(k, h, w, e)
					}
				}
			}
		}
		b := onnxbuild.New("shuffle")
		in := b.Input("x", onnx.Float, onnx.S("k"), onnx.N(G*G), onnx.N(D))
		b.OutputAs(pixelShuffle(b, in, G, D, s), "y", onnx.Float)
		n, m := (G/s)*(G/s), s*s*D
		y := runGraph(t, b, x, []int64{int64(K), int64(G * G), int64(D)}, []int64{int64(K), int64(n), int64(m)})
		bad := 0
		for k := 0; k < K; k++ {
			for r := 0; r < G/s; r++ {
				for c := 0; c < G/s; c++ {
					for dh := 0; dh < s; dh++ {
						for dw := 0; dw < s; dw++ {
							for e := 0; e < D; e++ {
								i := r*(G/s) + c
								ch := dh*(s*D) + dw*D + e
								got := y[(k*n+i)*m+ch]
								if want := code(k, s*r+dh, s*c+dw, e); got != want && bad < 5 {
									bad++
									t.Errorf("G=%d s=%d: y[%d,%d,%d] = %v, want %v", G, s, k, i, ch, got, want)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestMatMulNBitsPacking: ONNX Runtime's MatMulNBits over quantizeQ4's
// packing of a grid matrix equals x @ W computed here in float64; and a
// non-grid matrix matches the symmetric 4-bit dequantization bound.
func TestMatMulNBitsPacking(t *testing.T) {
	const K, N = 64, 5
	x := make([]float32, 2*K)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	tests := []struct {
		name string
		w    weight
		tol  float64
	}{
		{"grid", gridMatrix(7, "w", K, N, 1), 1e-5},
		// Not on the grid: error per weight ≤ scale/2 = max|w|/16.
		{"gaussian-ish", gridTensor(7, "w2", []int64{K, N}, 0.013, 0.3), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := make([]float32, K*N)
			tc.w.gen(w)
			bT, sT := q4Tensors(weight{name: "w", dims: []int64{K, N}, gen: func(d []float32) { copy(d, w) }})
			b := onnxbuild.New("nbits")
			in := b.Input("x", onnx.Float, onnx.N(2), onnx.N(K))
			y := b.MS1("MatMulNBits", []string{in, b.Init(bT), b.Init(sT)},
				onnx.Int("K", K), onnx.Int("N", N), onnx.Int("bits", 4), onnx.Int("block_size", qBlock))
			b.OutputAs(y, "y", onnx.Float)
			got := runGraph(t, b, x, []int64{2, K}, []int64{2, N})
			var wmax float64
			for _, v := range w {
				wmax = max(wmax, math.Abs(float64(v)))
			}
			for r := 0; r < 2; r++ {
				for c := 0; c < N; c++ {
					var want, xabs float64
					for k := 0; k < K; k++ {
						want += float64(x[r*K+k]) * float64(w[k*N+c])
						xabs += math.Abs(float64(x[r*K+k]))
					}
					tol := tc.tol
					if tol < 0 {
						tol = xabs*wmax/16 + 1e-5
					}
					if d := math.Abs(float64(got[r*N+c]) - want); d > tol {
						t.Errorf("y[%d,%d] = %v, want %v (±%g)", r, c, got[r*N+c], want, tol)
					}
				}
			}
		})
	}
}

// TestOperators checks each graph uses the operator families of the real
// exports (spec §5.3, §5.4) and logs the full list.
func TestOperators(t *testing.T) {
	p := presets["tiny512"]
	for _, v := range append(Variants(), ExtraVariants()...) {
		for _, gbld := range graphBuilders {
			g, err := gbld.fn(p, 1000, 1, v)
			if err != nil {
				t.Fatal(err)
			}
			graph, err := g.Graph()
			if err != nil {
				t.Fatal(err)
			}
			ops := map[string]int{}
			for _, n := range graph.Nodes {
				key := n.OpType
				if n.Domain != "" {
					key = n.Domain + ":" + n.OpType
				}
				ops[key]++
			}
			f16 := 0
			for _, in := range graph.Initializers {
				if in.Type == onnx.Float16 {
					f16++
				}
			}
			t.Logf("%s%s: %v", gbld.name, suffix(v), ops)
			var want, absent []string
			switch gbld.name {
			case "decoder_model_merged":
				want = []string{"SimplifiedLayerNormalization", "com.microsoft:SkipSimplifiedLayerNormalization",
					"com.microsoft:RotaryEmbedding", "com.microsoft:MultiHeadAttention", "Shape"}
			case "vision_encoder":
				want = []string{"Conv", "LayerNormalization", "Softmax", "NonZero", "Tanh"}
			case "embed_tokens":
				want = []string{"Gather"}
			}
			switch v {
			case Q4, Q4F16:
				if gbld.name != "embed_tokens" {
					want = append(want, "com.microsoft:MatMulNBits")
					absent = append(absent, "MatMul:weights")
				}
			case BNB4:
				if gbld.name != "embed_tokens" {
					want = append(want, "com.microsoft:MatMulBnb4")
					absent = append(absent, "MatMul:weights", "com.microsoft:MatMulNBits")
				}
			case Int8, Uint8, Quantized:
				// IntegerOps dynamic quantization (spec §5.4).
				absent = append(absent, "com.microsoft:MatMulNBits")
				switch gbld.name {
				case "embed_tokens":
					want = append(want, "DequantizeLinear")
				case "vision_encoder":
					want = slices.DeleteFunc(want, func(op string) bool { return op == "Conv" })
					want = append(want, "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")
					absent = append(absent, "MatMul:weights", "Conv")
				default:
					want = append(want, "DynamicQuantizeLinear", "MatMulInteger")
					absent = append(absent, "MatMul:weights")
				}
				// Weight types: int8 symmetric, uint8; quantized ("q8")
				// uint8 where the graph has a Conv or MultiHeadAttention.
				wantType := onnx.Uint8
				if v == Int8 {
					wantType = onnx.Int8
				}
				for _, n := range graph.Nodes {
					if n.OpType != "MatMulInteger" && n.OpType != "ConvInteger" {
						continue
					}
					for _, in := range graph.Initializers {
						if in.Name == n.Inputs[1] && in.Type != wantType {
							t.Errorf("%s%s: %s weight %s is %v, want %v", gbld.name, suffix(v), n.OpType, in.Name, in.Type, wantType)
						}
					}
				}
			default:
				absent = append(absent, "com.microsoft:MatMulNBits")
			}
			for _, op := range want {
				if ops[op] == 0 {
					t.Errorf("%s%s: no %s node", gbld.name, suffix(v), op)
				}
			}
			for _, op := range absent {
				if op == "MatMul:weights" {
					// Only activation×activation MatMuls remain (vision attention).
					for _, n := range graph.Nodes {
						if n.OpType == "MatMul" && isInitializer(graph, n.Inputs[1]) {
							t.Errorf("%s%s: MatMul %s still has a float weight", gbld.name, suffix(v), n.Name)
						}
					}
				} else if ops[op] > 0 {
					t.Errorf("%s%s: unexpected %s", gbld.name, suffix(v), op)
				}
			}
			if (v == FP16) != (f16 > 0) {
				t.Errorf("%s%s: %d float16 initializers", gbld.name, suffix(v), f16)
			}
		}
	}
}

func isInitializer(g *onnx.Graph, name string) bool {
	for _, in := range g.Initializers {
		if in.Name == name {
			return true
		}
	}
	return false
}

// TestDeterministic: the same seed writes identical files, another seed
// different weights.
func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	for i, seed := range []int64{5, 5, 6} {
		if err := Generate(ctx, "tiny384", dirs[i], Options{Seed: seed, Variants: []string{Q4}, GenerateTokenizer: true}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, "onnx", "decoder_model_merged_q4.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read(dirs[0]) != read(dirs[1]) {
		t.Error("same seed wrote different decoders")
	}
	if read(dirs[0]) == read(dirs[2]) {
		t.Error("different seeds wrote identical decoders")
	}
}

// BenchmarkGenerateTiny512 measures writing all three variants of tiny512.
func BenchmarkGenerateTiny512(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := Generate(context.Background(), "tiny512", b.TempDir(), Options{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
