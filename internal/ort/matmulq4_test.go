//go:build !windows

package ort

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/snapvlm/snapvlm/internal/onnx"
)

// rawInitializer is a TensorProto of elem type with raw little-endian data.
func rawInitializer(name string, elem int, dims []int64, raw []byte) []byte {
	var t []byte
	for _, d := range dims {
		t = protowire.AppendTag(t, 1, protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(d))
	}
	t = protowire.AppendTag(t, 2, protowire.VarintType)
	t = protowire.AppendVarint(t, uint64(elem))
	t = protowire.AppendTag(t, 8, protowire.BytesType)
	t = protowire.AppendString(t, name)
	t = protowire.AppendTag(t, 9, protowire.BytesType)
	return protowire.AppendBytes(t, raw)
}

// writeQ4Model writes y = MatMulNBits-shaped product of x [lead..., K] with
// packed weights and scales as initializers: op MatMulQ4 in domain, or
// com.microsoft MatMulNBits, with extra attributes.
func writeQ4Model(t testing.TB, domain string, k, n int, packed []byte, scales []float32, extra ...[]byte) string {
	t.Helper()
	return writeQ4SplitModel(t, domain, k, n, nil, packed, scales, extra...)
}

// writeQ4SplitModel is writeQ4Model with the node's N columns cut into
// outputs y0, y1, ... of the given widths (attributes N1 and N2), or into
// the one output y when widths is nil.
func writeQ4SplitModel(t testing.TB, domain string, k, n int, widths []int, packed []byte, scales []float32, extra ...[]byte) string {
	t.Helper()
	blocks := (k + 31) / 32
	outs, infos := []string{"y"}, [][]byte{valueInfo("y", 1, "b", "m", n)}
	if widths != nil {
		outs, infos = nil, nil
		for i, w := range widths {
			name := fmt.Sprintf("y%d", i)
			outs, infos = append(outs, name), append(infos, valueInfo(name, 1, "b", "m", w))
			if i > 0 {
				extra = append(extra, attr(fmt.Sprintf("N%d", i), int64(w), 0, 2))
			}
		}
	}
	op := MatMulQ4Op
	if domain == "com.microsoft" {
		op = "MatMulNBits"
	}
	nd := node(op, []string{"x", "w", "s"}, outs)
	attrs := [][]byte{attr("K", int64(k), 0, 2), attr("N", int64(n), 0, 2)}
	if domain == "com.microsoft" {
		attrs = append(attrs, attr("bits", 4, 0, 2), attr("block_size", 32, 0, 2))
	}
	attrs = append(attrs, extra...)
	for _, a := range attrs {
		nd = protowire.AppendTag(nd, 5, protowire.BytesType)
		nd = protowire.AppendBytes(nd, a)
	}
	nd = protowire.AppendTag(nd, 7, protowire.BytesType)
	nd = protowire.AppendString(nd, domain)
	path := writeModel(t, [][]byte{nd},
		[][]byte{valueInfo("x", 1, "b", "m", "k")}, // symbolic: the kernel checks it
		infos)
	m, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The initializers go into the graph (field 7 of the model), and the
	// node's domain into the opsets.
	sraw := make([]byte, 0, 4*len(scales))
	for _, v := range scales {
		sraw = protowire.AppendFixed32(sraw, math.Float32bits(v))
	}
	wDims, sDims := []int64{int64(n), int64(blocks), 16}, []int64{int64(n * blocks)}
	if op == MatMulQ4Op {
		// snapvlm's kernel reads the weights as the decoder rewrite packs them.
		packed, sraw = onnx.PackQ4(packed, sraw, n, k)
		groups := int64(n+15) / 16
		wDims, sDims = []int64{groups, int64(blocks), 8, 32}, []int64{groups, int64(blocks), 16}
	}
	g := protowire.AppendTag(nil, 5, protowire.BytesType)
	g = protowire.AppendBytes(g, rawInitializer("w", 2, wDims, packed))
	g = protowire.AppendTag(g, 5, protowire.BytesType)
	g = protowire.AppendBytes(g, rawInitializer("s", 1, sDims, sraw))
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	m = protowire.AppendBytes(m, g) // a second GraphProto field merges into the first
	if err := os.WriteFile(path, importDomain(m, domain), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// q4Reference is the kernel's product computed in float64 from its
// definition (matmulq4.c): each row and block of 32 quantized to int8 with
// scale max|values|/127, weights nibble-8 times their block's scale. It also
// returns a bound on each output's distance from the float product: half a
// quantization step of each block times the sum of its weights' magnitudes.
func q4Reference(x []float32, m, k, n int, packed []byte, scales []float32) (ref, bound []float64) {
	blocks := (k + 31) / 32
	ref, bound = make([]float64, m*n), make([]float64, m*n)
	q := make([]float64, k)
	sa := make([]float64, blocks)
	for r := range m {
		row := x[r*k : (r+1)*k]
		for b := range blocks {
			var amax float32
			for _, v := range row[b*32 : min(k, b*32+32)] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			var inv float32
			if amax > 0 {
				inv = 127 / amax
			}
			sa[b] = float64(amax / 127)
			for i := b * 32; i < min(k, b*32+32); i++ {
				q[i] = max(-127, min(127, math.RoundToEven(float64(row[i]*inv))))
			}
		}
		for c := range n {
			var acc, err float64
			for b := range blocks {
				var d, mag float64
				for i := b * 32; i < min(k, b*32+32); i++ {
					by := packed[(c*blocks+b)*16+(i%32)/2]
					nib := by & 15
					if i%2 == 1 {
						nib = by >> 4
					}
					d += float64(int(nib)-8) * q[i]
					mag += math.Abs(float64(int(nib) - 8))
				}
				s := float64(scales[c*blocks+b])
				acc += s * sa[b] * d
				err += s * sa[b] / 2 * mag
			}
			ref[r*n+c] = acc
			bound[r*n+c] = err*1.0001 + 1e-6
		}
	}
	return ref, bound
}

// TestMatMulQ4 runs snapvlm's 4-bit matmul, on its vector path (where the
// CPU has one) and its portable path, against the float64 product of its
// definition, and checks that it is within the activations' quantization
// error of ONNX Runtime's MatMulNBits (which computes in float32 from the
// same packed weights: the check that the packing is read as ONNX Runtime
// reads it). Shapes cover one row, row and column counts that leave
// partial tiles, an odd number of blocks, K not a multiple of 32, several
// row blocks and batch dimensions.
func TestMatMulQ4(t *testing.T) {
	env := testEnv(t)
	if ok, err := env.Attention(); !ok {
		t.Fatalf("snapvlm's operators not registered: %v", err)
	}
	cases := []struct {
		batch, m, k, n int
	}{
		{1, 1, 64, 4},
		{1, 1, 960, 130},
		{1, 3, 96, 7},
		{2, 5, 64, 9},
		{1, 7, 40, 5},
		{1, 300, 128, 70},
		{3, 1, 576, 192},
		{1, 4, 0 + 2560, 16},
		{1, 2, 32, 1},
		{1, 36, 2560, 20}, // the tiles: a last tile of 4 rows, 80 blocks
	}
	// The node attribute path: 1 portable, 2 vector, 0 the tiles where the
	// process has them.
	paths := []int{1}
	if MatMulQ4Vector() {
		paths = append(paths, 2, 0)
	} else {
		t.Log("this CPU has no AVX-512 VNNI: testing the portable path only")
	}
	if !MatMulQ4Tiles() {
		t.Log("this process has no AMX tiles")
	}
	for _, c := range cases {
		for _, path := range paths {
			name := fmt.Sprintf("%dx%dx%dx%d/path=%d", c.batch, c.m, c.k, c.n, path)
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(c.m*1000+c.k), uint64(c.n)))
				blocks := (c.k + 31) / 32
				packed := make([]byte, c.n*blocks*16)
				for i := range packed {
					packed[i] = byte(rng.IntN(256))
				}
				scales := make([]float32, c.n*blocks)
				for i := range scales {
					scales[i] = (0.5 + rng.Float32()) * 0.01
				}
				rows := c.batch * c.m
				x := make([]float32, rows*c.k)
				for i := range x {
					x[i] = rng.Float32()*2 - 1
				}
				if rows > 2 {
					x[c.k+1] = 40 // an outlier: its row's scale is 40/127
					for i := range c.k {
						x[2*c.k+i] = 0 // a zero row
					}
				}
				if rows > 3 {
					// A row of halves whose scale is 1: every value a tie,
					// rounded to even.
					for i := range c.k {
						x[3*c.k+i] = float32(i%255-127) / 2
					}
					x[3*c.k] = 127
				}
				run := func(domain string, path int) []float32 {
					var extra [][]byte
					if path != 0 {
						extra = append(extra, attr("path", int64(path), 0, 2))
					}
					s, err := env.NewSession(writeQ4Model(t, domain, c.k, c.n, packed, scales, extra...), SessionOptions{IntraOpThreads: 2})
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					xt, err := NewFloat32([]int64{int64(c.batch), int64(c.m), int64(c.k)}, x)
					if err != nil {
						t.Fatal(err)
					}
					defer xt.Close()
					y := make([]float32, rows*c.n)
					yt, err := NewFloat32([]int64{int64(c.batch), int64(c.m), int64(c.n)}, y)
					if err != nil {
						t.Fatal(err)
					}
					defer yt.Close()
					if err := s.Run(context.Background(), []*Tensor{xt}, []*Tensor{yt}); err != nil {
						t.Fatalf("%s: %v", domain, err)
					}
					return y
				}
				got := run(AttentionDomain, path)
				ref, bound := q4Reference(x, rows, c.k, c.n, packed, scales)
				var scale float64
				for _, v := range ref {
					scale = max(scale, math.Abs(v))
				}
				for i, v := range got {
					if d := math.Abs(float64(v) - ref[i]); d > 1e-5*scale+1e-6 {
						t.Fatalf("output %d: %g, the definition gives %g (|Δ| %.3g)", i, v, ref[i], d)
					}
				}
				exact := run("com.microsoft", 0)
				for i, v := range got {
					if d := math.Abs(float64(v) - float64(exact[i])); d > bound[i]+1e-5*scale {
						t.Fatalf("output %d: %g, MatMulNBits gives %g: |Δ| %.3g over the quantization bound %.3g", i, v, exact[i], d, bound[i])
					}
				}
				// The vector and tile paths sum in the portable path's order:
				// the same bits.
				if path != 1 && !slices.Equal(got, run(AttentionDomain, 1)) {
					t.Fatal("the accelerated path's bits differ from the portable path's")
				}
			})
		}
	}
}

// TestMatMulQ4RowsAlone: a row's outputs are the same bits whatever rows
// run beside it: 40 rows at once (the tile path), 5 (the vector path) and
// each row alone.
func TestMatMulQ4RowsAlone(t *testing.T) {
	env := testEnv(t)
	if ok, err := env.Attention(); !ok {
		t.Fatalf("snapvlm's operators not registered: %v", err)
	}
	const m, k, n = 40, 960, 48
	rng := rand.New(rand.NewPCG(3, 4))
	packed, scales := randomQ4(rng, k, n)
	x := make([]float32, m*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	s, err := env.NewSession(writeQ4Model(t, AttentionDomain, k, n, packed, scales), SessionOptions{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := func(rows []float32) []float32 {
		r := len(rows) / k
		xt, _ := NewFloat32([]int64{1, int64(r), k}, rows)
		y := make([]float32, r*n)
		yt, _ := NewFloat32([]int64{1, int64(r), n}, y)
		defer xt.Close()
		defer yt.Close()
		if err := s.Run(context.Background(), []*Tensor{xt}, []*Tensor{yt}); err != nil {
			t.Fatal(err)
		}
		return y
	}
	all := run(x)
	five := run(x[:5*k])
	for r := range m {
		alone := run(x[r*k : (r+1)*k])
		if !slices.Equal(alone, all[r*n:(r+1)*n]) {
			t.Fatalf("row %d alone differs from the row among %d", r, m)
		}
		if r < 5 && !slices.Equal(alone, five[r*n:(r+1)*n]) {
			t.Fatalf("row %d alone differs from the row among 5", r)
		}
	}
}

// randomQ4 returns random MatMulNBits weights for k × n (4 bits, blocks of
// 32, as writeQ4Model takes them) and their block scales.
func randomQ4(rng *rand.Rand, k, n int) ([]byte, []float32) {
	blocks := (k + 31) / 32
	packed := make([]byte, n*blocks*16)
	for i := range packed {
		packed[i] = byte(rng.IntN(256))
	}
	scales := make([]float32, n*blocks)
	for i := range scales {
		scales[i] = 0.001 + rng.Float32()*0.01
	}
	return packed, scales
}

// TestMatMulQ4Splits: a node whose columns go to two or three outputs (a
// fused query/key/value or gate/up matmul without its Split) writes each
// the same bits as the columns of the one-output node, on every path and
// for rows that take the vector path and the tiles (where the CPU has them).
func TestMatMulQ4Splits(t *testing.T) {
	env := testEnv(t)
	if ok, err := env.Attention(); !ok {
		t.Fatalf("snapvlm's operators not registered: %v", err)
	}
	const k = 96
	rng := rand.New(rand.NewPCG(5, 6))
	for _, widths := range [][]int{{32, 16, 32}, {48, 24}, {16, 16, 8}} {
		n := 0
		for _, w := range widths {
			n += w
		}
		packed, scales := randomQ4(rng, k, n)
		for _, path := range []int64{0, 1} {
			p := attr("path", path, 0, 2)
			one, err := env.NewSession(writeQ4Model(t, AttentionDomain, k, n, packed, scales, p), SessionOptions{IntraOpThreads: 2})
			if err != nil {
				t.Fatal(err)
			}
			split, err := env.NewSession(writeQ4SplitModel(t, AttentionDomain, k, n, widths, packed, scales, p), SessionOptions{IntraOpThreads: 2})
			if err != nil {
				t.Fatalf("widths %v: %v", widths, err)
			}
			for _, m := range []int{1, 4, 17, 40} {
				x := make([]float32, m*k)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				xt, _ := NewFloat32([]int64{1, int64(m), k}, x)
				y := make([]float32, m*n)
				yt, _ := NewFloat32([]int64{1, int64(m), int64(n)}, y)
				if err := one.Run(context.Background(), []*Tensor{xt}, []*Tensor{yt}); err != nil {
					t.Fatal(err)
				}
				var outs []*Tensor
				var ys [][]float32
				for _, w := range widths {
					yw := make([]float32, m*w)
					ot, _ := NewFloat32([]int64{1, int64(m), int64(w)}, yw)
					outs, ys = append(outs, ot), append(ys, yw)
				}
				if err := split.Run(context.Background(), []*Tensor{xt}, outs); err != nil {
					t.Fatalf("widths %v, path %d, %d rows: %v", widths, path, m, err)
				}
				for r := range m {
					c := 0
					for o, w := range widths {
						if !slices.Equal(ys[o][r*w:(r+1)*w], y[r*n+c:r*n+c+w]) {
							t.Fatalf("widths %v, path %d, %d rows: output %d of row %d differs from columns %d..%d", widths, path, m, o, r, c, c+w)
						}
						c += w
					}
				}
				xt.Close()
				yt.Close()
				for _, o := range outs {
					o.Close()
				}
			}
			one.Close()
			split.Close()
		}
	}
	// Widths that would cut a group of 16 columns are refused at load.
	packed := make([]byte, 40*(k/32)*16)
	scales := make([]float32, 40*(k/32))
	if s, err := env.NewSession(writeQ4SplitModel(t, AttentionDomain, k, 40, []int{24, 16}, packed, scales), SessionOptions{}); err == nil {
		s.Close()
		t.Error("outputs of 24 and 16 columns: loaded, want an error")
	} else if !strings.Contains(err.Error(), "multiples of 16") {
		t.Errorf("outputs of 24 and 16 columns: %v, want the widths named", err)
	}
}

// TestMatMulQ4Errors: inputs that do not fit K and N fail the run with a
// message naming the operator, and leave the session usable.
func TestMatMulQ4Errors(t *testing.T) {
	env := testEnv(t)
	if ok, err := env.Attention(); !ok {
		t.Fatalf("snapvlm's operators not registered: %v", err)
	}
	packed := make([]byte, 4*2*16)
	scales := make([]float32, 4*2)
	// The node says K = 64; the weights are [4, 2, 16]. Feed x with K = 32.
	s, err := env.NewSession(writeQ4Model(t, AttentionDomain, 64, 4, packed, scales), SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []int{32, 64} {
		xt, _ := NewFloat32([]int64{1, 1, int64(k)}, make([]float32, k))
		yt, _ := NewFloat32([]int64{1, 1, 4}, make([]float32, 4))
		err := s.Run(context.Background(), []*Tensor{xt}, []*Tensor{yt})
		xt.Close()
		yt.Close()
		if k == 32 && (err == nil || !strings.Contains(err.Error(), "4-bit matmul: want A [..., K]")) {
			t.Fatalf("K = 32 against 64: got %v", err)
		}
		if k == 64 && err != nil {
			t.Fatalf("after a failed run: %v", err)
		}
	}
}

// BenchmarkMatMulQ4 times snapvlm's 4-bit matmul and ONNX Runtime's
// MatMulNBits with int8 activations (accuracy_level 4) on the 500M size's
// MLP shapes, at one row (a decoding step), 4 (a batch of answers), 16 (a
// short prompt) and 512 (a prefill chunk); GOP/s is two operations per weight per row.
func BenchmarkMatMulQ4(b *testing.B) {
	env, err := Open(Options{})
	if err != nil {
		b.Skip(err)
	}
	for _, shape := range []struct{ k, n int }{{960, 2560}, {2560, 960}} {
		blocks := (shape.k + 31) / 32
		packed := make([]byte, shape.n*blocks*16)
		for i := range packed {
			packed[i] = byte(i*37 + i/7)
		}
		scales := make([]float32, shape.n*blocks)
		for i := range scales {
			scales[i] = 0.004 + float32(i%5)*0.001
		}
		for _, m := range []int{1, 4, 16, 512} {
			for _, kernel := range []string{"snapvlm", "ort-acc4"} {
				b.Run(fmt.Sprintf("%s/k=%d/n=%d/m=%d", kernel, shape.k, shape.n, m), func(b *testing.B) {
					path := writeQ4Model(b, AttentionDomain, shape.k, shape.n, packed, scales)
					if kernel == "ort-acc4" {
						path = writeQ4Model(b, "com.microsoft", shape.k, shape.n, packed, scales, attr("accuracy_level", 4, 0, 2))
					}
					s, err := env.NewSession(path, SessionOptions{})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					x := make([]float32, m*shape.k)
					for i := range x {
						x[i] = float32(math.Sin(float64(i)))
					}
					xt, _ := NewFloat32([]int64{1, int64(m), int64(shape.k)}, x)
					yt, _ := NewFloat32([]int64{1, int64(m), int64(shape.n)}, make([]float32, m*shape.n))
					defer xt.Close()
					defer yt.Close()
					b.ResetTimer()
					for range b.N {
						if err := s.Run(context.Background(), []*Tensor{xt}, []*Tensor{yt}); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(2*float64(m*shape.k*shape.n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
				})
			}
		}
	}
}
