package testmodel

import (
	"math"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
)

// TestQuantizedLinear: ONNX Runtime running the int8, uint8 and bnb4
// structures written here matches x @ W computed in float64 within the
// quantizers' error bounds: 8 bits — per element, half a step of the
// activation scale (range/255) and of the weight scale; NF4 — half the
// largest gap between NF4 codes (0.139) times the block's absmax.
func TestQuantizedLinear(t *testing.T) {
	const K, N, R = 128, 7, 3
	x := make([]float32, R*K)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7) * 2)
	}
	for _, v := range []string{Int8, Uint8, BNB4} {
		t.Run(v, func(t *testing.T) {
			w := gridTensor(3, "w", []int64{K, N}, 0.01, 0.2)
			wv := make([]float32, K*N)
			w.gen(wv)
			g := newGB("linear", 1, v)
			in := g.Input("x", onnx.Float, onnx.N(R), onnx.N(K))
			fixed := weight{name: "w", dims: w.dims, gen: func(d []float32) { copy(d, wv) }}
			var y string
			if v == BNB4 {
				y = g.bnb4MatMul(in, fixed, "")
			} else {
				y = g.integerOp("MatMulInteger", in, fixed, "")
			}
			g.OutputAs(y, "y", onnx.Float)
			got := runGraph(t, g.Builder, x, []int64{R, K}, []int64{R, N})
			xlo, xhi, wlo, whi := minMax(x), maxOf(x), minMax(wv), maxOf(wv)
			xs := (max(xhi, 0) - min(xlo, 0)) / 255
			ws := max(-wlo, whi) / 127
			if v == Uint8 {
				ws = (max(whi, 0) - min(wlo, 0)) / 255
			}
			wmax := max(-wlo, whi)
			for r := 0; r < R; r++ {
				for c := 0; c < N; c++ {
					var want, tol float64
					for k := 0; k < K; k++ {
						xk, wk := float64(x[r*K+k]), float64(wv[k*N+c])
						want += xk * wk
						if v == BNB4 {
							tol += math.Abs(xk) * wmax * 0.139
						} else {
							tol += math.Abs(xk)*ws/2 + math.Abs(wk)*xs/2 + xs*ws/4
						}
					}
					if d := math.Abs(float64(got[r*N+c]) - want); d > tol+1e-5 {
						t.Errorf("y[%d,%d] = %v, want %v ± %g", r, c, got[r*N+c], want, tol)
					}
				}
			}
		})
	}
}

func minMax(v []float32) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return float64(m)
}

func maxOf(v []float32) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return float64(m)
}
