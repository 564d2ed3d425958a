package ort

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// testEnv opens ONNX Runtime or skips; with SNAPVLM_REQUIRE_ORT=1 (set by
// `make test`) a missing library fails the test instead.
func testEnv(t *testing.T) *Env {
	t.Helper()
	env, err := Open(Options{})
	if err != nil {
		if os.Getenv("SNAPVLM_REQUIRE_ORT") == "1" {
			t.Fatalf("ONNX Runtime required: %v", err)
		}
		t.Skipf("ONNX Runtime not available (run 'snapvlm setup'): %v", err)
	}
	return env
}

// The tiny models below are written field by field from onnx.proto so that
// this package's tests do not depend on the project's own ONNX writer.

func valueInfo(name string, elem int, dims ...any) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		switch d := d.(type) {
		case int:
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d))
		case string:
			dim = protowire.AppendTag(dim, 2, protowire.BytesType)
			dim = protowire.AppendString(dim, d)
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(elem))
	tt = protowire.AppendTag(tt, 2, protowire.BytesType)
	tt = protowire.AppendBytes(tt, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tt)
	var vi []byte
	vi = protowire.AppendTag(vi, 1, protowire.BytesType)
	vi = protowire.AppendString(vi, name)
	vi = protowire.AppendTag(vi, 2, protowire.BytesType)
	vi = protowire.AppendBytes(vi, typ)
	return vi
}

func node(op string, in []string, out []string) []byte {
	var n []byte
	for _, s := range in {
		n = protowire.AppendTag(n, 1, protowire.BytesType)
		n = protowire.AppendString(n, s)
	}
	for _, s := range out {
		n = protowire.AppendTag(n, 2, protowire.BytesType)
		n = protowire.AppendString(n, s)
	}
	n = protowire.AppendTag(n, 4, protowire.BytesType)
	n = protowire.AppendString(n, op)
	return n
}

// writeModel writes a one-graph model: nodes, inputs, outputs (opset 17).
func writeModel(t testing.TB, nodes, inputs, outputs [][]byte) string {
	t.Helper()
	var g []byte
	for _, n := range nodes {
		g = protowire.AppendTag(g, 1, protowire.BytesType)
		g = protowire.AppendBytes(g, n)
	}
	g = protowire.AppendTag(g, 2, protowire.BytesType)
	g = protowire.AppendString(g, "test")
	for _, v := range inputs {
		g = protowire.AppendTag(g, 11, protowire.BytesType)
		g = protowire.AppendBytes(g, v)
	}
	for _, v := range outputs {
		g = protowire.AppendTag(g, 12, protowire.BytesType)
		g = protowire.AppendBytes(g, v)
	}
	var opset []byte
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, 17)
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, 8, protowire.BytesType)
	m = protowire.AppendBytes(m, opset)
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	m = protowire.AppendBytes(m, g)
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSessionIOAndRun(t *testing.T) {
	env := testEnv(t)
	if compareVersions(env.Version(), MinVersion) < 0 {
		t.Fatalf("loaded %s, older than %s", env.Version(), MinVersion)
	}
	// y = x + x (float32), h2 = Concat(h, h) (float16) over a symbolic length.
	s, err := env.NewSession(writeConcatModel(t), SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantIn := []IOInfo{
		{Name: "x", DType: Float32, Shape: []int64{-1, 3}, DimNames: []string{"batch", ""}},
		{Name: "h", DType: Float16, Shape: []int64{1, -1}, DimNames: []string{"", "len"}},
	}
	for i, w := range wantIn {
		g := s.Inputs()[i]
		if g.Name != w.Name || g.DType != w.DType || !equalInts(g.Shape, w.Shape) || strings.Join(g.DimNames, ",") != strings.Join(w.DimNames, ",") {
			t.Errorf("input %d = %+v, want %+v", i, g, w)
		}
	}
	if s.OutputIndex("h2") != 1 || s.InputIndex("nope") != -1 {
		t.Errorf("indexes: h2=%d nope=%d", s.OutputIndex("h2"), s.InputIndex("nope"))
	}

	cases := []struct {
		name string
		hLen int64
	}{
		{"zero-length float16", 0},
		{"float16 of three", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, _ := NewFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, float32(math.Inf(1))})
			defer x.Close()
			hdata := []uint16{0x3C00, 0xC000, 0x7C00} // 1, -2, +inf
			h, err := NewFloat16([]int64{1, c.hLen}, hdata)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ybuf := make([]float32, 6)
			y, _ := NewFloat32([]int64{2, 3}, ybuf)
			defer y.Close()
			h2buf, _ := NewBuffer(Float16, 6)
			h2, err := h2buf.Tensor([]int64{1, 2 * c.hLen})
			if err != nil {
				t.Fatal(err)
			}
			defer h2.Close()
			if err := s.Run(context.Background(), []*Tensor{x, h}, []*Tensor{y, h2}); err != nil {
				t.Fatal(err)
			}
			wantY := []float32{2, 4, 6, 8, 10, float32(math.Inf(1))}
			for i := range wantY {
				if ybuf[i] != wantY[i] {
					t.Fatalf("y = %v, want %v", ybuf, wantY)
				}
			}
			for i := int64(0); i < 2*c.hLen; i++ {
				if h2buf.F16[i] != hdata[i%c.hLen] {
					t.Fatalf("h2 = %x, want h twice", h2buf.F16[:2*c.hLen])
				}
			}
		})
	}
}

// writeConcatModel is the model of TestSessionIOAndRun with Concat's axis.
func writeConcatModel(t *testing.T) string {
	concat := node("Concat", []string{"h", "h"}, []string{"h2"})
	var attr []byte
	attr = protowire.AppendTag(attr, 1, protowire.BytesType)
	attr = protowire.AppendString(attr, "axis")
	attr = protowire.AppendTag(attr, 3, protowire.VarintType)
	attr = protowire.AppendVarint(attr, 1)
	attr = protowire.AppendTag(attr, 20, protowire.VarintType)
	attr = protowire.AppendVarint(attr, 2) // AttributeProto.INT
	concat = protowire.AppendTag(concat, 5, protowire.BytesType)
	concat = protowire.AppendBytes(concat, attr)
	return writeModel(t,
		[][]byte{node("Add", []string{"x", "x"}, []string{"y"}), concat},
		[][]byte{valueInfo("x", 1, "batch", 3), valueInfo("h", 10, 1, "len")},
		[][]byte{valueInfo("y", 1, "batch", 3), valueInfo("h2", 10, 1, "len2")},
	)
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRunErrors(t *testing.T) {
	env := testEnv(t)
	s, err := env.NewSession(writeConcatModel(t), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, _ := NewFloat32([]int64{1, 3}, make([]float32, 3))
	defer x.Close()
	cases := []struct {
		name    string
		ctx     func() context.Context
		in, out []*Tensor
		want    string
	}{
		{"wrong count", context.Background, []*Tensor{x}, nil, "run with 1 inputs"},
		{"missing input", context.Background, []*Tensor{x, nil}, []*Tensor{x, x}, "input h is missing"},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, []*Tensor{x, x}, []*Tensor{x, x}, context.Canceled.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Run(c.ctx(), c.in, c.out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want containing %q", err, c.want)
			}
		})
	}
}

func TestNewSessionErrors(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("\xff\xff\xff not onnx"), 0o644)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.onnx"), "missing.onnx"},
		{garbage, "garbage.onnx"},
	} {
		if _, err := env.NewSession(c.path, SessionOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSession(%s) err = %v, want naming the file", c.path, err)
		}
	}
	if _, err := env.NewSession(writeConcatModel(t), SessionOptions{OptLevel: "fastest"}); err == nil || !strings.Contains(err.Error(), "fastest") {
		t.Errorf("bad opt level err = %v", err)
	}
	if _, err := env.NewSession(writeConcatModel(t), SessionOptions{Provider: "NoSuchProvider"}); err == nil || !strings.Contains(err.Error(), "NoSuchProvider") {
		t.Errorf("bad provider err = %v", err)
	}
}

func TestFindLibrary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	t.Run("explicit missing", func(t *testing.T) {
		_, err := FindLibrary(missing)
		var nf *NotFoundError
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "the library path given") {
			t.Fatalf("err = %v, want a NotFoundError naming %s as the path given", err, missing)
		}
	})
	t.Run("env missing", func(t *testing.T) {
		t.Setenv(EnvLibPath, missing)
		_, err := FindLibrary("")
		if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), EnvLibPath) {
			t.Fatalf("err = %v, want naming %s and %s", err, missing, EnvLibPath)
		}
	})
	t.Run("search order", func(t *testing.T) {
		dir := t.TempDir()
		cached := filepath.Join(dir, "cached.so")
		envLib := filepath.Join(dir, "env.so")
		for _, f := range []string{cached, envLib} {
			os.WriteFile(f, nil, 0o644)
		}
		cases := []struct {
			name, explicit, env, cache string
			system                     bool
			want                       string
		}{
			{"explicit wins", envLib, cached, cached, true, envLib},
			{"env next", "", envLib, cached, true, envLib},
			{"cache next", "", "", cached, true, cached},
			{"system last", "", "", filepath.Join(dir, "nope.so"), true, "libonnxruntime"},
			{"nothing", "", "", filepath.Join(dir, "nope.so"), false, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := findLibrary(c.explicit, searcher{
					getenv:    func(string) string { return c.env },
					cachePath: func() (string, error) { return c.cache, nil },
					probe: func(string) error {
						if c.system {
							return nil
						}
						return errors.New("not found")
					},
				})
				if c.want == "" {
					var nf *NotFoundError
					if !errors.As(err, &nf) || !strings.Contains(err.Error(), "nope.so (missing)") ||
						!strings.Contains(err.Error(), "system library path") || !strings.Contains(err.Error(), "snapvlm setup") {
						t.Fatalf("err = %v, want a NotFoundError listing every place", err)
					}
					return
				}
				if err != nil || !strings.Contains(got, c.want) {
					t.Fatalf("got %q, %v; want %q", got, err, c.want)
				}
			})
		}
	})
	t.Run("not a library", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
		os.WriteFile(bad, []byte("not an ELF file"), 0o644)
		if _, err := libraryVersion(bad); err == nil {
			t.Fatal("libraryVersion of a text file succeeded")
		}
	})
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.30.0", "1.20.0", 1},
		{"1.20.0", "1.20", 0},
		{"1.19.2", "1.20.0", -1},
		{"1.9.0", "1.20.0", -1},
		{"2.0.0-dev", "1.20.0", 1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if err := checkVersion("lib", "1.19.0"); err == nil || !strings.Contains(err.Error(), "too old") {
		t.Errorf("checkVersion(1.19.0) = %v", err)
	}
}
