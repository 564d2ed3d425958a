package onnx_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	ort "github.com/yalue/onnxruntime_go"
)

const intK = 16

var intN = []int64{12, 4, 4}

// intGraph is x [B, S, 16] quantized once and read by three matmuls of
// widths 12, 4, 4 as ONNX Runtime's dynamic quantization writes them
// (spec §5.4); wt is the weights' type (int8 symmetric, or uint8 with a
// zero point). extra adds a reader of x_scale outside the chains.
func intGraph(t *testing.T, wt onnx.DataType, extra bool) []byte {
	t.Helper()
	b := onnxbuild.New("int")
	B, S := onnx.S("batch_size"), onnx.S("sequence_length")
	x := b.Input("x", onnx.Float, B, S, onnx.N(intK))
	dq := b.Op("DynamicQuantizeLinear", []string{x}, 3)
	for j, n := range intN {
		q := make([]byte, intK*int(n))
		for i := range q {
			v := int(math.Round(100 * math.Sin(float64(i*(j+3))*0.77)))
			if wt == onnx.Uint8 {
				v += 128
			}
			q[i] = byte(v)
		}
		zp := byte(0)
		if wt == onnx.Uint8 {
			zp = byte(120 + j)
		}
		wq := b.Init(&onnx.Tensor{Name: fmt.Sprint("w", j, "_quantized"), Type: wt, Dims: []int64{intK, n}, Raw: q})
		wz := b.Init(&onnx.Tensor{Name: fmt.Sprint("w", j, "_zero_point"), Type: wt, Raw: []byte{zp}})
		ws := b.Init(onnx.FloatTensor(fmt.Sprint("w", j, "_scale"), nil, []float32{0.01 * float32(j+1)}))
		acc := b.Op1("MatMulInteger", []string{dq[0], wq, dq[2], wz})
		y := b.Mul(b.Cast(acc, onnx.Float), b.Mul(dq[1], ws))
		b.OutputAs(y, fmt.Sprint("y", j), onnx.Float, B, S, onnx.N(int(n)))
	}
	if extra {
		b.OutputAs(b.Mul(dq[1], b.ScalarFloat(2)), "scale2", onnx.Float)
	}
	return marshal(t, b)
}

// runY runs a graph of input x [1, s, k] and outputs y0, y1, y2 on s rows.
func runY(t *testing.T, model []byte, s, k int) [][]float32 {
	t.Helper()
	x := make([]float32, s*k)
	for i := range x {
		x[i] = float32(math.Cos(float64(i)*0.41)*3 + 0.5)
	}
	xt := tensor(t, []int64{1, int64(s), int64(k)}, x)
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"x"}, []string{"y0", "y1", "y2"}, nil)
	if err != nil {
		t.Fatalf("creating session: %v", err)
	}
	defer sess.Destroy()
	outs := make([]ort.Value, 3)
	if err := sess.Run([]ort.Value{xt}, outs); err != nil {
		t.Fatalf("run: %v", err)
	}
	var res [][]float32
	for _, o := range outs {
		res = append(res, append([]float32(nil), o.(*ort.Tensor[float32]).GetData()...))
		o.Destroy()
	}
	return res
}

func TestFuseIntegerMatMuls(t *testing.T) {
	needORT(t)
	for _, wt := range []onnx.DataType{onnx.Int8, onnx.Uint8} {
		t.Run(wt.String(), func(t *testing.T) {
			src := intGraph(t, wt, false)
			dst, n, err := onnx.FuseIntegerMatMuls(src)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("%d DynamicQuantizeMatMul nodes written, want 1", n)
			}
			ops := graphOps(t, dst)
			if ops["com.microsoft:DynamicQuantizeMatMul"] != 1 || ops["Split"] != 1 || len(ops) != 2 {
				t.Errorf("rewritten graph's nodes %v, want one DynamicQuantizeMatMul and one Split", ops)
			}
			for _, s := range []int{1, 7} {
				want, got := runY(t, src, s, intK), runY(t, dst, s, intK)
				for j := range want {
					for i := range want[j] {
						// The scale product is rounded once per column, as
						// in the original: the same bits but for an ulp.
						if d := math.Abs(float64(got[j][i] - want[j][i])); d > 1e-6*math.Abs(float64(want[j][i])) {
							t.Fatalf("%d rows: y%d[%d] = %g, want %g", s, j, i, got[j][i], want[j][i])
						}
					}
				}
			}
		})
	}
	// x_scale read outside the chains: nothing to fuse.
	src := intGraph(t, onnx.Int8, true)
	if _, n, err := onnx.FuseIntegerMatMuls(src); err != nil || n != 0 {
		t.Errorf("x_scale read elsewhere: %d nodes written, err %v; want the graph kept", n, err)
	}
}

// graphOps counts a model's nodes by op type, without the Identity nodes
// onnxbuild names its outputs with.
func graphOps(t *testing.T, model []byte) map[string]int {
	t.Helper()
	ops, err := onnx.ReadOpTypes(model)
	if err != nil {
		t.Fatal(err)
	}
	delete(ops, "Identity")
	return ops
}

// nbitsGraph is x [B, S, 64] read by three 4-bit MatMulNBits of widths 12,
// 4, 4 (blocks of 32; with zero points when zp; accuracy level acc).
func nbitsGraph(t *testing.T, zp bool, acc int64) []byte {
	t.Helper()
	return nbitsGraphN(t, zp, acc, intN)
}

// nbitsGraphN is nbitsGraph with MatMulNBits of the given widths.
func nbitsGraphN(t *testing.T, zp bool, acc int64, widths []int64) []byte {
	t.Helper()
	const k, blk = 64, 32
	b := onnxbuild.New("nbits")
	B, S := onnx.S("batch_size"), onnx.S("sequence_length")
	x := b.Input("x", onnx.Float, B, S, onnx.N(k))
	for j, n := range widths {
		packed := make([]byte, n*k/2)
		for i := range packed {
			packed[i] = byte(i*37 + j*11)
		}
		scales := make([]float32, n*k/blk)
		for i := range scales {
			scales[i] = 0.01 + 0.003*float32((i+j)%7)
		}
		ins := []string{x,
			b.Init(onnxbuild.Uint8Tensor(fmt.Sprint("b", j), []int64{n, k / blk, blk / 2}, packed)),
			b.Init(onnx.FloatTensor(fmt.Sprint("s", j), []int64{n * k / blk}, scales))}
		if zp {
			z := make([]byte, n) // two 4-bit zero points per byte, k/blk = 2 blocks
			for i := range z {
				z[i] = byte(0x78 + i + j)
			}
			ins = append(ins, b.Init(onnxbuild.Uint8Tensor(fmt.Sprint("z", j), []int64{n}, z)))
		}
		attrs := []onnx.Attr{onnx.Int("K", k), onnx.Int("N", n), onnx.Int("bits", 4), onnx.Int("block_size", blk)}
		if acc > 0 {
			attrs = append(attrs, onnx.Int("accuracy_level", acc))
		}
		b.OutputAs(b.MS1("MatMulNBits", ins, attrs...), fmt.Sprint("y", j), onnx.Float, B, S, onnx.N(int(n)))
	}
	return marshal(t, b)
}

func TestFuseMatMulNBits(t *testing.T) {
	needORT(t)
	for _, c := range []struct {
		zp  bool
		acc int64
	}{{false, 0}, {true, 0}, {false, 4}} {
		t.Run(fmt.Sprintf("zp=%v/accuracy=%d", c.zp, c.acc), func(t *testing.T) {
			src := nbitsGraph(t, c.zp, c.acc)
			dst, n, err := onnx.FuseMatMulNBits(src)
			if err != nil {
				t.Fatal(err)
			}
			ops := graphOps(t, dst)
			if n != 1 || ops["com.microsoft:MatMulNBits"] != 1 || ops["Split"] != 1 || len(ops) != 2 {
				t.Fatalf("%d fused, nodes %v; want one MatMulNBits and one Split", n, ops)
			}
			for _, s := range []int{1, 5} {
				want, got := runY(t, src, s, 64), runY(t, dst, s, 64)
				for j := range want {
					if !slices.Equal(got[j], want[j]) {
						t.Fatalf("%d rows: y%d = %v, want the original's %v", s, j, got[j], want[j])
					}
				}
			}
		})
	}
}

// TestUseMatMulQ4Split: the Split after a fused MatMulNBits becomes the
// kernel's node's outputs (attributes N1, N2) when all its widths but the
// last are multiples of 16, and stays otherwise. (The outputs' bits are
// tested in internal/ort, TestMatMulQ4Splits.)
func TestUseMatMulQ4Split(t *testing.T) {
	for _, c := range []struct {
		widths []int64
		split  int
	}{{[]int64{32, 16, 16}, 0}, {[]int64{48, 8}, 0}, {intN, 1}, {[]int64{16, 8, 16}, 1}} {
		t.Run(fmt.Sprint(c.widths), func(t *testing.T) {
			fused, n, err := onnx.FuseMatMulNBits(nbitsGraphN(t, false, 0, c.widths))
			if err != nil || n != 1 {
				t.Fatalf("fusing: %d fused, %v", n, err)
			}
			dst, n, err := onnx.UseMatMulQ4(fused, "ai.test", "Q4", "")
			if err != nil {
				t.Fatal(err)
			}
			ops := graphOps(t, dst)
			if n != 1 || ops["ai.test:Q4"] != 1 || ops["Split"] != c.split || len(ops) != 1+c.split {
				t.Fatalf("%d replaced, nodes %v; want one Q4 and %d Split", n, ops, c.split)
			}
			if got := bytes.Contains(dst, []byte("N1")); got != (c.split == 0) {
				t.Errorf("attribute N1 written: %v, want %v", got, c.split == 0)
			}
			if got := bytes.Contains(dst, []byte("N2")); got != (c.split == 0 && len(c.widths) == 3) {
				t.Errorf("attribute N2 written: %v, want %v", got, c.split == 0 && len(c.widths) == 3)
			}
		})
	}
}

// TestUseMatMulQ4: the MatMulNBits nodes of the kernel's layout become the
// kernel's op with their inputs, K and N; nodes with zero points stay. (The
// kernel's product is tested against MatMulNBits in internal/ort.)
func TestUseMatMulQ4(t *testing.T) {
	for _, c := range []struct {
		zp   bool
		acc  int64
		want int
	}{{false, 0, 3}, {false, 4, 3}, {true, 0, 0}} {
		t.Run(fmt.Sprintf("zp=%v/accuracy=%d", c.zp, c.acc), func(t *testing.T) {
			dst, n, err := onnx.UseMatMulQ4(nbitsGraph(t, c.zp, c.acc), "ai.test", "Q4", "")
			if err != nil {
				t.Fatal(err)
			}
			ops := graphOps(t, dst)
			if n != c.want || ops["ai.test:Q4"] != c.want || ops["com.microsoft:MatMulNBits"] != 3-c.want {
				t.Fatalf("%d replaced, nodes %v; want %d", n, ops, c.want)
			}
			if n > 0 && !bytes.Contains(dst, []byte("ai.test")) {
				t.Fatal("the domain is not imported")
			}
		})
	}
}
