package onnx_test

import (
	"math"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	ort "github.com/yalue/onnxruntime_go"
)

// TestQuantizeMatMulsInt8: ONNX Runtime running the rewritten graph gives
// x @ W (computed here in float64) within the quantization bound (half a
// step of the activation scale and of the column's weight scale per
// product); a MatMul of two activations stays float, a weight also read by
// another node keeps its float copy, and an activation read by two MatMuls
// is quantized once.
func TestQuantizeMatMulsInt8(t *testing.T) {
	needORT(t)
	const R, K, C = 3, 40, 6
	ws := [2][]float32{make([]float32, K*C), make([]float32, K*C)}
	for i := range ws[0] {
		ws[0][i] = float32(math.Cos(float64(i)*1.3)) * float32(1+i%C) // columns of different ranges
		ws[1][i] = float32(math.Sin(float64(i) * 0.4))
	}
	b := onnxbuild.New("g")
	x := b.Input("x", onnx.Float, onnx.N(R), onnx.N(K))
	w := b.Init(onnx.FloatTensor("w", []int64{K, C}, ws[0]))
	shared := b.Init(onnx.FloatTensor("shared", []int64{K, C}, ws[1]))
	y1, y2 := b.MatMul(x, w), b.MatMul(x, shared)
	b.OutputAs(y1, "y1", onnx.Float, onnx.N(R), onnx.N(C))
	b.OutputAs(y2, "y2", onnx.Float, onnx.N(R), onnx.N(C))
	b.OutputAs(b.MatMul(y1, b.Transpose(y2, 1, 0)), "y3", onnx.Float, onnx.N(R), onnx.N(R))
	b.OutputAs(shared, "s", onnx.Float, onnx.N(K), onnx.N(C))
	src := marshal(t, b)
	out, n, err := onnx.QuantizeMatMulsInt8(src)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d MatMuls replaced, want 2", n)
	}
	ops, err := onnx.ReadOpTypes(out)
	if err != nil {
		t.Fatal(err)
	}
	if ops["DynamicQuantizeLinear"] != 1 || ops["MatMulInteger"] != 2 || ops["MatMul"] != 1 {
		t.Errorf("ops after rewrite: %v", ops)
	}
	xv := make([]float32, R*K)
	var xlo, xhi float64
	for i := range xv {
		xv[i] = float32(math.Sin(float64(i)*0.9)*3 + 0.5)
		xlo, xhi = min(xlo, float64(xv[i])), max(xhi, float64(xv[i]))
	}
	got := runFloat(t, out, "", []string{"x"}, []*ort.Tensor[float32]{tensor(t, []int64{R, K}, xv)}, []string{"y1", "y2", "s"})
	xs := (xhi - xlo) / 255
	for j, wv := range ws {
		for c := 0; c < C; c++ {
			var wmax float64
			for k := 0; k < K; k++ {
				wmax = max(wmax, math.Abs(float64(wv[k*C+c])))
			}
			wsc := wmax / 127
			for r := 0; r < R; r++ {
				var want, tol float64
				for k := 0; k < K; k++ {
					xk, wk := float64(xv[r*K+k]), float64(wv[k*C+c])
					want += xk * wk
					tol += math.Abs(xk)*wsc/2 + math.Abs(wk)*xs/2 + xs*wsc/4
				}
				if d := math.Abs(float64(got[j][r*C+c]) - want); d > tol+1e-5 || d == 0 {
					t.Errorf("y%d[%d,%d] = %v, want %v ± %g (exactly equal means not quantized)", j+1, r, c, got[j][r*C+c], want, tol)
				}
			}
		}
	}
	for i, v := range ws[1] {
		if got[2][i] != v {
			t.Fatalf("the shared weight changed at %d: %v, want %v", i, got[2][i], v)
		}
	}
}
