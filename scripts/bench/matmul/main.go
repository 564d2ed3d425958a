// Command matmul measures matrix-multiply throughput on this machine, the
// compute limit bench-report sets prefill against: ONNX Runtime's float32
// MatMul, its 8-bit DynamicQuantizeMatMul (the int8 decoder files), its
// 4-bit MatMulNBits exact (q4) and with int8 activations (q4i8,
// accuracy_level 4), and snapvlm's 4-bit kernel (q4snapvlm, ort.MatMulQ4Op),
// all of one SmolVLM2-500M MLP projection's shape (M rows of K = 960 by
// N = 2560), the best of several runs, printed as JSON as GOP/s (two
// operations per multiply-add).
//
// usage: go run ./scripts/bench/matmul [-threads N] [-m ROWS] [-runs N]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	"github.com/snapvlm/snapvlm/internal/ort"
)

const k, n = 960, 2560

func main() {
	threads := flag.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per physical core)")
	m := flag.Int("m", 512, "rows (prompt tokens in a prefill chunk)")
	runs := flag.Int("runs", 20, "timed runs of each matmul; the best counts")
	flag.Parse()
	if err := run(*threads, *m, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "matmul:", err)
		os.Exit(1)
	}
}

func run(threads, m, runs int) error {
	if m <= 0 || runs <= 0 || threads < 0 {
		return fmt.Errorf("want -m and -runs positive and -threads >= 0, got %d, %d, %d", m, runs, threads)
	}
	env, err := ort.Open(ort.Options{})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "snapvlm-matmul")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := map[string]any{"m": m, "k": k, "n": n, "threads": threads, "onnxruntime": env.Version()}
	for _, kind := range []string{"fp32", "int8", "q4", "q4i8", "q4snapvlm"} {
		path := filepath.Join(dir, kind+".onnx")
		if err := writeGraph(path, kind); err != nil {
			return err
		}
		best, err := timeGraph(env, path, m, threads, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		res[kind+"_gops"] = 2 * float64(m) * k * n / best.Seconds() / 1e9
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// writeGraph writes y = x @ W for a fixed W [k, n]: a float32 MatMul, or a
// DynamicQuantizeMatMul on int8 weights with one scale per column.
func writeGraph(path, kind string) error {
	b := onnxbuild.New("matmul")
	x := b.Input("x", onnx.Float, onnx.S("m"), onnx.N(k))
	var y string
	if kind == "fp32" {
		w := make([]float32, k*n)
		for i := range w {
			w[i] = float32(math.Sin(float64(i))) * 0.05
		}
		y = b.MatMul(x, b.Init(onnx.FloatTensor("w", []int64{k, n}, w)))
	} else if strings.HasPrefix(kind, "q4") {
		const blk = 32
		packed, scales := make([]byte, n*k/2), make([]float32, n*k/blk)
		for i := range packed {
			packed[i] = byte(i*37 + i/n)
		}
		for i := range scales {
			scales[i] = 0.004
		}
		acc := int64(0)
		if kind == "q4i8" {
			acc = 4
		}
		in := []string{x,
			b.Init(&onnx.Tensor{Name: "w", Type: onnx.Uint8, Dims: []int64{n, k / blk, blk / 2}, Raw: packed}),
			b.Init(onnx.FloatTensor("scales", []int64{n * k / blk}, scales))}
		if kind == "q4snapvlm" {
			y = b.DomainOp(ort.AttentionDomain, ort.MatMulQ4Op, in, 1, onnx.Int("K", k), onnx.Int("N", n))[0]
		} else {
			y = b.MS1("MatMulNBits", in, onnx.Int("K", k), onnx.Int("N", n), onnx.Int("bits", 4), onnx.Int("block_size", blk), onnx.Int("accuracy_level", acc))
		}
	} else {
		q, scales := make([]byte, k*n), make([]float32, n)
		for i := range q {
			q[i] = byte(int8(i*37 + i/n))
		}
		for i := range scales {
			scales[i] = 0.0004
		}
		y = b.MS1("DynamicQuantizeMatMul", []string{x,
			b.Init(&onnx.Tensor{Name: "w", Type: onnx.Int8, Dims: []int64{k, n}, Raw: q}),
			b.Init(onnx.FloatTensor("scale", []int64{n}, scales)),
			b.Init(&onnx.Tensor{Name: "zero_point", Type: onnx.Int8, Dims: []int64{n}, Raw: make([]byte, n)})})
	}
	b.OutputAs(y, "y", onnx.Float, onnx.S("m"), onnx.N(n))
	g, err := b.Graph()
	if err != nil {
		return err
	}
	m := onnx.NewModel(g)
	m.Opsets = append(m.Opsets, onnx.OpsetID{Domain: ort.AttentionDomain, Version: 1})
	return onnxbuild.WriteFile(m, path, onnxbuild.WriteOptions{})
}

// timeGraph returns the fastest of runs runs on m rows, after a warm-up.
func timeGraph(env *ort.Env, path string, m, threads, runs int) (time.Duration, error) {
	s, err := env.NewSession(path, ort.SessionOptions{IntraOpThreads: threads})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	xs := make([]float32, m*k)
	for i := range xs {
		xs[i] = float32(math.Cos(float64(i) * 0.1))
	}
	x, err := ort.NewFloat32([]int64{int64(m), k}, xs)
	if err != nil {
		return 0, err
	}
	defer x.Close()
	y, err := ort.NewFloat32([]int64{int64(m), n}, make([]float32, m*n))
	if err != nil {
		return 0, err
	}
	defer y.Close()
	best := time.Duration(math.MaxInt64)
	for i := -2; i < runs; i++ {
		t0 := time.Now()
		if err := s.Run(context.Background(), []*ort.Tensor{x}, []*ort.Tensor{y}); err != nil {
			return 0, err
		}
		if d := time.Since(t0); i >= 0 && d < best {
			best = d
		}
	}
	return best, nil
}
