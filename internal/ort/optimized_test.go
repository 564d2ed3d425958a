package ort

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// initializer is a float32 TensorProto with raw data.
func initializer(name string, dims []int64, data []float32) []byte {
	var tp []byte
	for _, d := range dims {
		tp = protowire.AppendTag(tp, 1, protowire.VarintType)
		tp = protowire.AppendVarint(tp, uint64(d))
	}
	tp = protowire.AppendTag(tp, 2, protowire.VarintType)
	tp = protowire.AppendVarint(tp, 1) // FLOAT
	tp = protowire.AppendTag(tp, 8, protowire.BytesType)
	tp = protowire.AppendString(tp, name)
	raw := make([]byte, 4*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	tp = protowire.AppendTag(tp, 9, protowire.BytesType)
	tp = protowire.AppendBytes(tp, raw)
	return tp
}

// writeMatMulModel writes y = Relu(x·W + b) + x·W2 with weights as
// initializers (4 KB each: large enough to go to the copy's data file):
// ONNX Runtime fuses MatMul and Add into one node at the "basic" level and
// more above, so the saved graph differs from the file.
func writeMatMulModel(t *testing.T) string {
	t.Helper()
	const in, out = 32, 32
	w, w2, b := make([]float32, in*out), make([]float32, in*out), make([]float32, out)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)*0.7)) / 3
		w2[i] = float32(math.Cos(float64(i)*1.3)) / 5
	}
	for i := range b {
		b[i] = float32(i)/7 - 0.5
	}
	path := writeModel(t,
		[][]byte{
			node("MatMul", []string{"x", "W"}, []string{"m"}),
			node("Add", []string{"m", "B"}, []string{"a"}),
			node("Relu", []string{"a"}, []string{"r"}),
			node("MatMul", []string{"x", "W2"}, []string{"m2"}),
			node("Add", []string{"r", "m2"}, []string{"y"}),
		},
		[][]byte{valueInfo("x", 1, "batch", in)},
		[][]byte{valueInfo("y", 1, "batch", out)},
	)
	// Append the initializers to the graph (GraphProto field 5, model
	// field 7): the graph is the last field writeModel writes.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g []byte
	for _, x := range [][]byte{initializer("W", []int64{in, out}, w), initializer("W2", []int64{in, out}, w2), initializer("B", []int64{out}, b)} {
		g = protowire.AppendTag(g, 5, protowire.BytesType)
		g = protowire.AppendBytes(g, x)
	}
	data = protowire.AppendTag(data, 7, protowire.BytesType) // a repeated message field merges
	data = protowire.AppendBytes(data, g)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runMatMul runs the model of writeMatMulModel on a fixed batch.
func runMatMul(t *testing.T, s *Session) []float32 {
	t.Helper()
	const batch = 3
	xs := make([]float32, batch*32)
	for i := range xs {
		xs[i] = float32(i%11)/4 - 1.1
	}
	x, err := NewFloat32([]int64{batch, 32}, xs)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ys := make([]float32, batch*32)
	y, err := NewFloat32([]int64{batch, 32}, ys)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if err := s.Run(context.Background(), []*Tensor{x}, []*Tensor{y}); err != nil {
		t.Fatal(err)
	}
	return ys
}

// TestOptimizedCache: the first load saves the optimised graph, the next
// loads it (optimisation off, weights mapped) and computes the same bits
// as a session optimised from the file; a truncated or garbled copy is
// reported, replaced and never used.
func TestOptimizedCache(t *testing.T) {
	env := testEnv(t)
	model := writeMatMulModel(t)
	plain, err := env.NewSession(model, SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := runMatMul(t, plain)
	plain.Close()
	if want[0] == 0 && want[1] == 0 {
		t.Fatalf("degenerate reference output %v", want)
	}

	for _, level := range []OptLevel{OptDefault, OptBasic, OptExtended} {
		t.Run("level="+string(level), func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			dir, _ := RewrittenDir()
			var warnings []error
			o := SessionOptions{IntraOpThreads: 1, OptLevel: level, OptimizedCache: true, Warn: func(err error) { warnings = append(warnings, err) }}
			ref, err := env.NewSession(model, SessionOptions{IntraOpThreads: 1, OptLevel: level})
			if err != nil {
				t.Fatal(err)
			}
			want := runMatMul(t, ref)
			ref.Close()

			open := func(what string, fromCache bool) []float32 {
				t.Helper()
				s, err := env.NewSession(model, o)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				defer s.Close()
				if got := s.Optimized() != ""; got != fromCache {
					t.Fatalf("%s: loaded from the cache %v, want %v", what, got, fromCache)
				}
				return runMatMul(t, s)
			}
			check := func(what string, got []float32) {
				t.Helper()
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: y[%d] = %v, want %v (bit for bit)", what, i, got[i], want[i])
					}
				}
			}
			check("first load", open("first load", false))
			copies, err := filepath.Glob(filepath.Join(dir, "*-m.onnx"))
			if err != nil || len(copies) != 1 {
				t.Fatalf("optimised copies in %s: %v, %v", dir, copies, err)
			}
			// The copy is the optimised graph: MatMul and Add fused into Gemm.
			if b, err := os.ReadFile(copies[0]); err != nil || !bytes.Contains(b, []byte("Gemm")) {
				t.Fatalf("optimised copy %s has no fused Gemm node (%v)", copies[0], err)
			}
			check("second load", open("second load", true))
			if len(warnings) != 0 {
				t.Fatalf("warnings: %v", warnings)
			}
			graph, data := copies[0], copies[0]+DataSuffix
			size := func(p string) int64 {
				st, err := os.Stat(p)
				if err != nil {
					return -1
				}
				return st.Size()
			}
			graphSize, dataSize := size(graph), size(data)
			if dataSize < 2*32*32*4 {
				t.Fatalf("data file %s: %d bytes, want the two weight matrices", data, dataSize)
			}
			listed, err := ListRewritten()
			if err != nil || len(listed) != 1 || listed[0].Stale || listed[0].Source != model || listed[0].Size < graphSize+dataSize {
				t.Fatalf("ListRewritten = %+v, %v; want the copy of %s, not stale, with its data file", listed, err, model)
			}
			for _, damage := range []struct {
				name string
				do   func() error
			}{
				{"graph truncated", func() error { return os.Truncate(graph, graphSize/2) }},
				{"graph empty", func() error { return os.Truncate(graph, 0) }},
				{"graph garbled", func() error { return os.WriteFile(graph, []byte("\x08\x08garbage, not a model"), 0o644) }},
				{"data truncated", func() error { return os.Truncate(data, dataSize-100) }},
				{"data missing", func() error { return os.Remove(data) }},
			} {
				if err := damage.do(); err != nil {
					t.Fatal(err)
				}
				warnings = nil
				check(damage.name, open(damage.name, false))
				if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "not usable") {
					t.Fatalf("%s: warnings %v, want one saying the copy is not usable", damage.name, warnings)
				}
				// The copy was made again, whole.
				if g, d := size(graph), size(data); g != graphSize || d != dataSize {
					t.Fatalf("%s: copy after reload: %d and %d bytes, want %d and %d", damage.name, g, d, graphSize, dataSize)
				}
				warnings = nil
				check(damage.name+", reloaded", open(damage.name+", reloaded", true))
				if len(warnings) != 0 {
					t.Fatalf("%s, reloaded: warnings %v", damage.name, warnings)
				}
			}

			// A save interrupted mid-way leaves its directory: listed as
			// stale; clearing removes it, and each copy with its data file
			// and source record.
			if err := os.MkdirAll(filepath.Join(dir, ".rewrite-interrupted"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ".rewrite-interrupted", "m.onnx.data"), []byte("partial"), 0o644); err != nil {
				t.Fatal(err)
			}
			if listed, err := ListRewritten(); err != nil || len(listed) != 2 {
				t.Fatalf("ListRewritten with an interrupted save = %+v, %v; want the copy and the leftover", listed, err)
			}
			if removed, err := RemoveRewritten(func(c RewrittenCopy) bool { return !c.Stale }); err != nil || len(removed) != 1 || !strings.Contains(removed[0].Path, ".rewrite-") {
				t.Fatalf("clearing stale copies removed %+v, %v; want only the leftover", removed, err)
			}
			if _, err := RemoveRewritten(nil); err != nil {
				t.Fatal(err)
			}
			if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
				t.Fatalf("left in %s after clearing: %v, %v", dir, left, err)
			}
		})
	}
}

// TestOptimizedCacheSkips: no copy for a level that optimises nothing, a
// provider other than the CPU, or without the option.
func TestOptimizedCacheSkips(t *testing.T) {
	env := testEnv(t)
	model := writeMatMulModel(t)
	for _, o := range []SessionOptions{
		{OptimizedCache: true, OptLevel: OptDisable},
		{OptimizedCache: false},
		{OptimizedCache: true, Provider: "NoSuchProvider"},
	} {
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		s, err := env.NewSession(model, o)
		if err == nil {
			if s.Optimized() != "" {
				t.Errorf("%+v: loaded from %s", o, s.Optimized())
			}
			s.Close()
		}
		dir, _ := RewrittenDir()
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%+v: %s written (%v)", o, dir, err)
		}
	}
}

// TestOptimizedCacheUnwritable: a cache dir that cannot be made (here a
// file stands where it should be) costs the saved copy, with a warning,
// not the load.
func TestOptimizedCacheUnwritable(t *testing.T) {
	env := testEnv(t)
	model := writeMatMulModel(t)
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home)
	if err := os.WriteFile(filepath.Join(home, "snapvlm"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warnings []error
	s, err := env.NewSession(model, SessionOptions{IntraOpThreads: 1, OptimizedCache: true, Warn: func(err error) { warnings = append(warnings, err) }})
	if err != nil {
		t.Fatalf("load with an unwritable cache dir: %v", err)
	}
	defer s.Close()
	if s.Optimized() != "" {
		t.Errorf("loaded from a cache copy %s", s.Optimized())
	}
	if got := runMatMul(t, s); len(got) == 0 {
		t.Error("no output")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "not saving the optimised graph") {
		t.Errorf("warnings %v, want one about not saving", warnings)
	}
}
