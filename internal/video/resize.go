package video

import (
	"math"
	"runtime"
	"sync"

	"github.com/snapvlm/snapvlm/internal/imageproc"
)

// Frame resizing follows transformers' SmolVLMVideoProcessor, which resizes
// uint8 frame tensors with torchvision's F.resize(..., BICUBIC,
// antialias=True): the LANCZOS of preprocessor_config.json is not available
// for tensors and the processor substitutes BICUBIC (it logs a warning
// saying so). That is PyTorch's separable antialiased bicubic (Keys cubic,
// a = −0.5, support 2·scale when downscaling, Pillow's scheme) computed in
// float32, width first, then height, rounded back to uint8 (clamp to
// [0, 255], round half to even).
//
// This file reproduces the float32 kernel of the reference build used by
// the golden tests (Debian's PyTorch 1.13 on x86-64, whose AVX2 kernels are
// compiled with fused multiply-adds): the filter is evaluated as
// (((x − 5)·x + 8)·x − 4)·a and sums are accumulated with FMA, which is why
// fma32 appears below. With that, every weight and every output byte of
// the golden cases matches. Other builds of the same reference differ at
// the level of rounding: PyTorch ≥ 2.1 on x86 CPUs resizes uint8 with a
// 16-bit fixed-point kernel, and a build without FMA rounds differently;
// each differs from this one by one level on a small fraction of pixels.

// fma32 is a float32 fused multiply-add: the product of two float32 is
// exact in float64, so only the final roundings remain.
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// cubicAA is PyTorch 1.13's bicubic aa filter (a = −0.5 as a double
// literal, x a float) as its AVX2 build computes it.
func cubicAA(x float32) float32 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	switch {
	case x < 1:
		// ((a + 2.0) * x - (a + 3.0)) * x * x + 1 in double.
		xd := float64(x)
		t := math.FMA(a+2.0, xd, -(a + 3.0))
		return float32(math.FMA(t*xd, xd, 1))
	case x < 2:
		// (((x - 5) * x + 8) * x - 4) * a: float, then double.
		t := fma32(fma32(x-5, x, 8), x, -4)
		return float32(float64(t) * a)
	}
	return 0
}

// aaWeights holds, for every output index, the first input index and the
// normalised weights of the input samples it averages.
type aaWeights struct {
	start []int
	w     [][]float32
	// fused: the reference build accumulates with fused multiply-adds
	// when upscaling (window of at most 5 taps) and with separate
	// multiplies and adds when downscaling — found by comparing every
	// output byte with it (the golden resize cases).
	fused bool
}

// tap adds v·w to acc as the reference build does.
func (ws *aaWeights) tap(acc, v, w float32) float32 {
	if ws.fused {
		return fma32(v, w, acc)
	}
	return acc + float32(v*w)
}

// computeAA is PyTorch's _compute_indices_weights_aa with scalar_t = float
// and align_corners = false, for an output of outSize from inSize samples.
func computeAA(inSize, outSize int) aaWeights {
	// area_pixel_compute_scale: (float)input_size / output_size.
	scale := float32(inSize) / float32(outSize)
	const interp = 4 // bicubic
	var support float32
	if scale >= 1 {
		support = float32(float64(interp) * 0.5 * float64(scale))
	} else {
		support = float32(float64(interp) * 0.5)
	}
	var invscale float32 = 1
	if scale >= 1 {
		invscale = float32(1.0 / float64(scale))
	}
	ws := aaWeights{start: make([]int, outSize), w: make([][]float32, outSize), fused: scale < 1}
	for i := range outSize {
		center := float32(float64(scale) * (float64(i) + 0.5))
		xmin := max(int64(float64(center-support)+0.5), 0)
		xmax := min(int64(float64(center+support)+0.5), int64(inSize))
		n := int(xmax - xmin)
		w := make([]float32, max(n, 0))
		var total float32
		for j := range w {
			// (j + xmin - center + 0.5) * invscale: the integer is
			// converted to float, the rest is computed in double.
			arg := float32((float64(float32(int64(j)+xmin)-center) + 0.5) * float64(invscale))
			w[j] = cubicAA(arg)
			total += w[j]
		}
		if total != 0 {
			for j := range w {
				w[j] /= total
			}
		}
		ws.start[i] = int(xmin)
		ws.w[i] = w
	}
	return ws
}

// resizeBicubicAA resizes a packed RGB uint8 image to w×h exactly as
// torchvision's F.resize(BICUBIC, antialias=True) does on a uint8 tensor
// through its float32 path. A dimension whose size does not change is left
// alone (its pass would be the identity).
func resizeBicubicAA(img *imageproc.RGB, w, h int) *imageproc.RGB {
	if img.W == w && img.H == h {
		return img
	}
	src := make([]float32, len(img.Pix))
	for i, p := range img.Pix {
		src[i] = float32(p)
	}
	sw, sh := img.W, img.H
	if w != sw {
		ws := computeAA(sw, w)
		dst := make([]float32, w*sh*3)
		parallel(sh, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				row := src[y*sw*3 : (y+1)*sw*3]
				out := dst[y*w*3 : (y+1)*w*3]
				for x := range w {
					k, wt := ws.start[x], ws.w[x]
					for c := range 3 {
						acc := float32(row[k*3+c] * wt[0])
						for j := 1; j < len(wt); j++ {
							acc = ws.tap(acc, row[(k+j)*3+c], wt[j])
						}
						out[x*3+c] = acc
					}
				}
			}
		})
		src, sw = dst, w
	}
	if h != sh {
		ws := computeAA(sh, h)
		dst := make([]float32, w*h*3)
		stride := w * 3
		parallel(h, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				k, wt := ws.start[y], ws.w[y]
				out := dst[y*stride : (y+1)*stride]
				for i := range out {
					acc := float32(src[k*stride+i] * wt[0])
					for j := 1; j < len(wt); j++ {
						acc = ws.tap(acc, src[(k+j)*stride+i], wt[j])
					}
					out[i] = acc
				}
			}
		})
		src, sh = dst, h
	}
	out := &imageproc.RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for i, v := range src {
		// clamp(0, 255), round half to even, cast.
		v = min(max(v, 0), 255)
		out.Pix[i] = uint8(math.RoundToEven(float64(v)))
	}
	return out
}

// parallel splits [0, n) over the CPUs.
func parallel(n int, fn func(i0, i1 int)) {
	workers := min(runtime.GOMAXPROCS(0), max(n/16, 1))
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for i0 := 0; i0 < n; i0 += per {
		wg.Go(func() { fn(i0, min(i0+per, n)) })
	}
	wg.Wait()
}
