package testmodel

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"runtime"
	"strconv"
	"sync"

	"github.com/snapvlm/snapvlm/internal/float16"
	"github.com/snapvlm/snapvlm/internal/onnx"
)

// Weights are small integers times a power of two ("grid" values). Such
// values are exact in float16, and every MatMul weight block of 32 along K
// holds one -8·s and otherwise values in [-7s, 7s], so the symmetric 4-bit
// quantizer maps it without loss. The fp32, fp16 and q4 variants therefore
// hold identical weights and differ only in arithmetic, which keeps their
// greedy outputs equal.

// rng is splitmix64: fast, seedable, good enough for weights.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// newRNG seeds a stream from the model seed and a weight's name, so each
// weight is the same in every variant and independent of generation order.
func newRNG(seed int64, name string) *rng {
	h := fnv.New64a()
	h.Write([]byte(name))
	return &rng{s: uint64(seed)*0x2545f4914f6cdd1d ^ h.Sum64()}
}

// fillInts fills dst with integers in [-7, 7] as float32.
func (r *rng) fillInts(dst []float32) {
	var bits uint64
	for i := range dst {
		if i%8 == 0 {
			bits = r.next()
		}
		// 8 random bits mod 15: a negligible bias, deterministic.
		dst[i] = float32(int(bits&0xff)%15 - 7)
		bits >>= 8
	}
}

// chunk is the number of elements filled from one RNG stream; chunks are
// generated in parallel.
const chunk = 1 << 20

// parallel runs fn over [0, n) split into chunk-sized ranges on all CPUs.
func parallel(n int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n <= chunk || workers == 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := range next {
				fn(lo, min(n, lo+chunk))
			}
		}()
	}
	for lo := 0; lo < n; lo += chunk {
		next <- lo
	}
	close(next)
	wg.Wait()
}

// fillRandomInts fills dst with integers in [-7, 7], one RNG stream per
// chunk (seeded by name and chunk index) so chunks can run in parallel.
func fillRandomInts(seed int64, name string, dst []float32) {
	parallel(len(dst), func(lo, hi int) {
		newRNG(seed, name+"#"+strconv.Itoa(lo/chunk)).fillInts(dst[lo:hi])
	})
}

// pow2 rounds v to the nearest power of two, so grid values stay exact in
// float16.
func pow2(v float64) float32 {
	return float32(math.Exp2(math.Round(math.Log2(v))))
}

// intStd is the standard deviation of integers uniform in [-7, 7].
const intStd = 4.32

// weight is one generated parameter: its dims and how to produce its
// float32 values.
type weight struct {
	name string
	dims []int64
	gen  func(dst []float32)
}

func (w weight) elements() int64 {
	n := int64(1)
	for _, d := range w.dims {
		n *= d
	}
	return n
}

// gridMatrix is a [K, N] MatMul weight with output standard deviation about
// gain for unit-variance inputs.
func gridMatrix(seed int64, name string, k, n int, gain float64) weight {
	s := pow2(gain / (intStd * math.Sqrt(float64(k))))
	return weight{name: name, dims: []int64{int64(k), int64(n)}, gen: func(dst []float32) {
		fillRandomInts(seed, name, dst)
		r := newRNG(seed, name+"/min")
		// One -8 per block of 32 along K in every column pins the block's
		// quantization scale to exactly s.
		for b := 0; b < k; b += qBlock {
			size := min(qBlock, k-b)
			for c := 0; c < n; c++ {
				row := b + int(r.next()%uint64(size))
				dst[row*n+c] = -8
			}
		}
		parallel(len(dst), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				dst[i] *= s
			}
		})
	}}
}

// gridTensor is center + q·s for q in [-7, 7], with s the power of two
// nearest to std/4.32.
func gridTensor(seed int64, name string, dims []int64, center, std float64) weight {
	s := pow2(std / intStd)
	return weight{name: name, dims: dims, gen: func(dst []float32) {
		fillRandomInts(seed, name, dst)
		parallel(len(dst), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				dst[i] = float32(center) + dst[i]*s
			}
		})
	}}
}

// fixedTensor holds computed values (such as RoPE caches).
func fixedTensor(name string, dims []int64, vals []float32) weight {
	return weight{name: name, dims: dims, gen: func(dst []float32) { copy(dst, vals) }}
}

// float32Tensor turns a weight into a lazily filled float32 initializer.
func float32Tensor(w weight) *onnx.Tensor {
	return &onnx.Tensor{Name: w.name, Type: onnx.Float, Dims: w.dims, Fill: func(dst []byte) {
		v := make([]float32, w.elements())
		w.gen(v)
		parallel(len(v), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v[i]))
			}
		})
	}}
}

// float16Tensor turns a weight into a lazily filled float16 initializer.
func float16Tensor(w weight) *onnx.Tensor {
	return &onnx.Tensor{Name: w.name, Type: onnx.Float16, Dims: w.dims, Fill: func(dst []byte) {
		v := make([]float32, w.elements())
		w.gen(v)
		parallel(len(v), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				binary.LittleEndian.PutUint16(dst[2*i:], float16.FromFloat32(v[i]))
			}
		})
	}}
}

// qBlock is the MatMulNBits block size along K.
const qBlock = 32

// quantizeQ4 quantizes a row-major [K, N] matrix the way ONNX Runtime's
// MatMulNBits quantizer does with symmetric 4-bit blocks of 32 along K:
// per column n and block b, scale = v/-8 where v is the block value of
// largest magnitude, q = clamp(round(w/scale) + 8, 0, 15), implicit zero
// point 8. packed is [N][blocks][16] with the even k in the low nibble;
// scales is [N][blocks].
func quantizeQ4(w []float32, k, n int) (packed []byte, scales []float32) {
	blocks := (k + qBlock - 1) / qBlock
	packed = make([]byte, n*blocks*qBlock/2)
	scales = make([]float32, n*blocks)
	// Work on columns in groups, copied contiguous, for cache locality.
	const group = 64
	parallel((n+group-1)/group, func(lo, hi int) {
		col := make([]float32, group*k)
		for gi := lo; gi < hi; gi++ {
			c0, c1 := gi*group, min(n, (gi+1)*group)
			for i := 0; i < k; i++ {
				row := w[i*n+c0 : i*n+c1]
				for j, v := range row {
					col[j*k+i] = v
				}
			}
			for c := c0; c < c1; c++ {
				quantizeColumn(col[(c-c0)*k:(c-c0+1)*k], packed[c*blocks*qBlock/2:(c+1)*blocks*qBlock/2], scales[c*blocks:(c+1)*blocks])
			}
		}
	})
	return packed, scales
}

// quantizeColumn quantizes one column of K values into its blocks.
func quantizeColumn(col []float32, packed []byte, scales []float32) {
	k := len(col)
	for b := range scales {
		var vmax float32
		for _, v := range col[b*qBlock : min(k, (b+1)*qBlock)] {
			if abs32(v) > abs32(vmax) {
				vmax = v
			}
		}
		scale := vmax / -8
		scales[b] = scale
		inv := float32(0)
		if scale != 0 {
			inv = 1 / scale
		}
		base := b * qBlock / 2
		for j := 0; j < qBlock; j++ {
			q := 8
			if i := b*qBlock + j; i < k {
				q = int(math.RoundToEven(float64(col[i]*inv))) + 8
				q = max(0, min(15, q))
			}
			if j%2 == 0 {
				packed[base+j/2] = byte(q)
			} else {
				packed[base+j/2] |= byte(q) << 4
			}
		}
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// q4Tensors turns a [K, N] weight into MatMulNBits' B and scales
// initializers (named name+"_Q4" and name+"_scales" as the ONNX Runtime
// quantizer does).
func q4Tensors(w weight) (bT, scalesT *onnx.Tensor) {
	k, n := int(w.dims[0]), int(w.dims[1])
	blocks := int64((k + qBlock - 1) / qBlock)
	// B is written before its scales: quantize once in B's Fill and keep
	// the scales for the next tensor (recomputed if used alone).
	var cached []float32
	quant := func() ([]byte, []float32) {
		v := make([]float32, w.elements())
		w.gen(v)
		return quantizeQ4(v, k, n)
	}
	bT = &onnx.Tensor{Name: w.name + "_Q4", Type: onnx.Uint8, Dims: []int64{int64(n), blocks, qBlock / 2}, Fill: func(dst []byte) {
		p, s := quant()
		copy(dst, p)
		cached = s
	}}
	scalesT = &onnx.Tensor{Name: w.name + "_scales", Type: onnx.Float, Dims: []int64{int64(n) * blocks}, Fill: func(dst []byte) {
		s := cached
		if s == nil {
			_, s = quant()
		}
		cached = nil
		for i, f := range s {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	}}
	return bT, scalesT
}
