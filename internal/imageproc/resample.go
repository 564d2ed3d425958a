package imageproc

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Filter is a resampling filter, numbered like Pillow's Image.Resampling
// (the "resample" field of preprocessor_config.json).
type Filter int

// Filters supported by Resize. The numbers are Pillow's.
const (
	Lanczos  Filter = 1
	Bilinear Filter = 2
	Bicubic  Filter = 3
)

// String returns Pillow's name of the filter.
func (f Filter) String() string {
	switch f {
	case Lanczos:
		return "LANCZOS"
	case Bilinear:
		return "BILINEAR"
	case Bicubic:
		return "BICUBIC"
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

// kernel returns the filter function and its support, as in Pillow's
// libImaging/Resample.c.
func (f Filter) kernel() (func(float64) float64, float64, error) {
	switch f {
	case Lanczos:
		return lanczos, 3, nil
	case Bilinear:
		return bilinear, 1, nil
	case Bicubic:
		return bicubic, 2, nil
	}
	return nil, 0, fmt.Errorf("resample filter %d is not supported (want 1 LANCZOS, 2 BILINEAR or 3 BICUBIC)", int(f))
}

// The float64(...) conversions below stop the compiler from fusing a
// multiply and an add into one FMA (allowed by the Go spec on some targets),
// which would round differently from Pillow's C code.

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x = float64(x * math.Pi)
	return math.Sin(x) / x
}

func lanczos(x float64) float64 {
	if -3 <= x && x < 3 {
		return float64(sinc(x) * sinc(x/3))
	}
	return 0
}

func bilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return float64(float64(float64(float64((a+2)*x)-(a+3))*x)*x) + 1
	}
	if x < 2 {
		return float64(float64(float64(float64(float64(x-5)*x)+8)*x)-4) * a
	}
	return 0
}

// precisionBits is Pillow's PRECISION_BITS: 8 bits of result, 2 bits of
// headroom for the negative lobes, the rest fraction.
const precisionBits = 32 - 8 - 2

// coeffs holds the fixed-point weights of one pass: for output index i the
// input run starts at bounds[2i] and has bounds[2i+1] taps, weighted by
// k[i*ksize : i*ksize+bounds[2i+1]].
type coeffs struct {
	ksize  int
	bounds []int
	k      []int32
}

// precompute ports Pillow's precompute_coeffs + normalize_coeffs_8bpc for a
// whole-image box (in0 = 0, in1 = inSize).
func precompute(inSize, outSize int, filter func(float64) float64, support float64) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support *= filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{ksize: ksize, bounds: make([]int, outSize*2), k: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	ss := 1 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := float64(float64(xx)+0.5) * scale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			v := filter(float64(float64(x+xmin)-center+0.5) * ss)
			w[x] = v
			ww += v
		}
		k := c.k[xx*ksize : (xx+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			// Round half away from zero, then truncate, as Pillow does.
			if v < 0 {
				k[x] = int32(-0.5 + float64(v*(1<<precisionBits)))
			} else {
				k[x] = int32(0.5 + float64(v*(1<<precisionBits)))
			}
		}
		c.bounds[xx*2] = xmin
		c.bounds[xx*2+1] = xmax
	}
	return c
}

// clip8 is Pillow's clip8: drop the fraction (arithmetic shift) and clamp.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// Resize resamples img to w×h exactly like Pillow's
// Image.resize((w, h), filter) on an RGB uint8 image: separable, horizontal
// pass first into a uint8 intermediate, a pass skipped when its dimension
// does not change. Rows are split across up to GOMAXPROCS goroutines.
func Resize(img *RGB, w, h int, f Filter) (*RGB, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("resize to %dx%d: size must be positive", w, h)
	}
	if img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
		return nil, fmt.Errorf("resize: invalid %dx%d image with %d bytes", img.W, img.H, len(img.Pix))
	}
	filter, support, err := f.kernel()
	if err != nil {
		return nil, err
	}
	if w == img.W && h == img.H {
		// Pillow returns a copy when the size does not change.
		return &RGB{W: w, H: h, Pix: append([]uint8(nil), img.Pix...)}, nil
	}
	vert := precompute(img.H, h, filter, support)
	src := img
	if w != img.W {
		// Only the rows the vertical pass reads are resampled horizontally.
		first, last := 0, img.H
		if h != img.H {
			first = vert.bounds[0]
			last = vert.bounds[2*h-2] + vert.bounds[2*h-1]
			for i := 0; i < h; i++ {
				vert.bounds[2*i] -= first
			}
		}
		horiz := precompute(img.W, w, filter, support)
		tmp := &RGB{W: w, H: last - first, Pix: make([]uint8, w*(last-first)*3)}
		parallelRows(tmp.H, func(y0, y1 int) { horizontalPass(tmp, img, first, y0, y1, &horiz) })
		src = tmp
	}
	if h == img.H {
		return src, nil
	}
	out := &RGB{W: src.W, H: h, Pix: make([]uint8, src.W*h*3)}
	parallelRows(h, func(y0, y1 int) { verticalPass(out, src, y0, y1, &vert) })
	return out, nil
}

// minRowsPerWorker keeps goroutine overhead negligible on small images.
const minRowsPerWorker = 16

// parallelRows calls fn on contiguous row ranges covering [0, n), using up
// to GOMAXPROCS goroutines.
func parallelRows(n int, fn func(y0, y1 int)) { parallelChunks(n, minRowsPerWorker, fn) }

// parallelChunks calls fn on contiguous ranges covering [0, n), at least
// minPer items each, using up to GOMAXPROCS goroutines.
func parallelChunks(n, minPer int, fn func(i0, i1 int)) {
	workers := runtime.GOMAXPROCS(0)
	if m := n / minPer; m < workers {
		workers = m
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		y0, y1 := n*i/workers, n*(i+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(y0, y1)
		}()
	}
	wg.Wait()
}

// horizontalPass writes rows [y0, y1) of dst from rows offset+y of src.
//
// Two rows are filtered together and two samples share one 64-bit
// multiply-add (SWAR): a lane pair lo + hi<<32 times a weight w sums to
// S = Slo + Shi<<32 (mod 2^64), and since each true sum fits an int32 (as in
// Pillow's int arithmetic) both are recovered exactly. This halves the
// multiplies; the results are Pillow's integers bit for bit.
func horizontalPass(dst, src *RGB, offset, y0, y1 int, c *coeffs) {
	sw, dw := src.W*3, dst.W*3
	rbA := make([]int64, src.W) // R | B<<32 of row a
	rbB := make([]int64, src.W) // R | B<<32 of row b
	gg := make([]int64, src.W)  // G of row a | G of row b<<32
	for y := y0; y < y1; y += 2 {
		a := src.Pix[(y+offset)*sw : (y+offset+1)*sw]
		b := a
		if y+1 < y1 {
			b = src.Pix[(y+offset+1)*sw : (y+offset+2)*sw]
		}
		for x := range rbA {
			pa := a[x*3 : x*3+3 : x*3+3]
			pb := b[x*3 : x*3+3 : x*3+3]
			rbA[x] = int64(pa[0]) | int64(pa[2])<<32
			rbB[x] = int64(pb[0]) | int64(pb[2])<<32
			gg[x] = int64(pa[1]) | int64(pb[1])<<32
		}
		oa := dst.Pix[y*dw : (y+1)*dw]
		ob := oa
		if y+1 < y1 {
			ob = dst.Pix[(y+1)*dw : (y+2)*dw]
		}
		horizontalRows2(oa, ob, rbA, rbB, gg, c)
	}
}

// horizontalRows2 filters the packed rows into oa and ob (which may be the
// same row when only one is left; the second write then repeats the first).
func horizontalRows2(oa, ob []uint8, rbA, rbB, gg []int64, c *coeffs) {
	const half = 1<<(precisionBits-1) | 1<<(precisionBits-1)<<32
	ks := c.ksize
	oa, ob = oa[:len(oa)/3*3], ob[:len(oa)/3*3]
	for xx := 0; xx < len(oa)/3; xx++ {
		xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
		k := c.k[xx*ks : xx*ks+n]
		pa := rbA[xmin : xmin+n]
		pb := rbB[xmin : xmin+n]
		pg := gg[xmin : xmin+n]
		pa, pb, pg = pa[:len(k)], pb[:len(k)], pg[:len(k)] // lets the compiler drop bounds checks
		var sa, sb, sg int64 = half, half, half
		// Two taps per iteration: fewer loop instructions per multiply.
		i := 0
		for ; i+1 < len(k); i += 2 {
			w0, w1 := int64(k[i]), int64(k[i+1])
			sa += pa[i]*w0 + pa[i+1]*w1
			sb += pb[i]*w0 + pb[i+1]*w1
			sg += pg[i]*w0 + pg[i+1]*w1
		}
		if i < len(k) {
			w := int64(k[i])
			sa += pa[i] * w
			sb += pb[i] * w
			sg += pg[i] * w
		}
		ra, ba := split64(sa)
		rb, bb := split64(sb)
		ga, gb := split64(sg)
		o := ob[xx*3 : xx*3+3 : xx*3+3]
		o[0], o[1], o[2] = clip8(rb), clip8(gb), clip8(bb)
		o = oa[xx*3 : xx*3+3 : xx*3+3]
		o[0], o[1], o[2] = clip8(ra), clip8(ga), clip8(ba)
	}
}

// split64 recovers the two int32 lane sums of a SWAR accumulator.
func split64(s int64) (lo, hi int32) {
	lo = int32(s)
	hi = int32((s - int64(lo)) >> 32)
	return lo, hi
}

// verticalPass writes rows [y0, y1) of dst. It sweeps whole source rows so
// memory is read contiguously, eight bytes at a time: with
// M = 0x000000FF000000FF, (u >> 8s) & M holds bytes s and s+4 of the word u
// in two 32-bit lanes, so one 64-bit multiply-add serves two samples (see
// horizontalPass for why the lanes stay exact). The sums are Pillow's.
func verticalPass(dst, src *RGB, y0, y1 int, c *coeffs) {
	const (
		half  = 1 << (precisionBits - 1)
		lanes = 0x000000FF000000FF
	)
	rw := src.W * 3
	words := rw / 8
	acc := make([]int64, words*4)
	tail := make([]int32, rw-words*8)
	for yy := y0; yy < y1; yy++ {
		ymin, n := c.bounds[2*yy], c.bounds[2*yy+1]
		k := c.k[yy*c.ksize : yy*c.ksize+n]
		for i := range acc {
			acc[i] = half | half<<32
		}
		for i := range tail {
			tail[i] = half
		}
		for i, w := range k {
			row := src.Pix[(ymin+i)*rw : (ymin+i+1)*rw]
			w := int64(w)
			a, r := acc, row
			for len(a) >= 4 && len(r) >= 8 {
				u := binary.LittleEndian.Uint64(r)
				a[0] += int64(u&lanes) * w
				a[1] += int64(u>>8&lanes) * w
				a[2] += int64(u>>16&lanes) * w
				a[3] += int64(u>>24&lanes) * w
				a, r = a[4:], r[8:]
			}
			for x := range tail {
				tail[x] += int32(r[x]) * int32(w)
			}
		}
		out := dst.Pix[yy*rw : (yy+1)*rw]
		for j := 0; j < words; j++ {
			o := out[j*8 : j*8+8 : j*8+8]
			q := acc[j*4 : j*4+4 : j*4+4]
			for s := 0; s < 4; s++ {
				lo, hi := split64(q[s])
				o[s], o[s+4] = clip8(lo), clip8(hi)
			}
		}
		for x, v := range tail {
			out[words*8+x] = clip8(v)
		}
	}
}
