package onnx_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	ort "github.com/yalue/onnxruntime_go"
)

// runFloat runs a model (from bytes, or from path when data is nil) with
// float32 inputs and returns the float32 outputs.
func runFloat(t *testing.T, data []byte, path string, inNames []string, ins []*ort.Tensor[float32], outNames []string) [][]float32 {
	t.Helper()
	var s *ort.DynamicAdvancedSession
	var err error
	if data != nil {
		s, err = ort.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, nil)
	} else {
		s, err = ort.NewDynamicAdvancedSession(path, inNames, outNames, nil)
	}
	if err != nil {
		t.Fatalf("creating session: %v", err)
	}
	defer s.Destroy()
	inputs := make([]ort.Value, len(ins))
	for i, v := range ins {
		inputs[i] = v
	}
	outputs := make([]ort.Value, len(outNames))
	if err := s.Run(inputs, outputs); err != nil {
		t.Fatalf("run: %v", err)
	}
	res := make([][]float32, len(outputs))
	for i, o := range outputs {
		ft, ok := o.(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %s: got %T, want float32 tensor", outNames[i], o)
		}
		res[i] = append([]float32(nil), ft.GetData()...)
		o.Destroy()
	}
	return res
}

// marshal serializes the model a test built.
func marshal(t *testing.T, b *onnxbuild.Builder) []byte {
	t.Helper()
	g, err := b.Graph()
	if err != nil {
		t.Fatal(err)
	}
	data, err := onnxbuild.Marshal(onnx.NewModel(g))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func tensor(t *testing.T, dims []int64, data []float32) *ort.Tensor[float32] {
	t.Helper()
	x, err := ort.NewTensor(ort.NewShape(dims...), data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Destroy() })
	return x
}

func near(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

// linearModel is y = x @ W + b with W [2,3], x [batch, 2].
func linearModel(t *testing.T) *onnx.Model {
	t.Helper()
	b := onnxbuild.New("linear")
	x := b.Input("x", onnx.Float, onnx.S("batch"), onnx.N(2))
	w := b.Init(onnx.FloatTensor("w", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}))
	bias := b.Init(onnx.FloatTensor("b", []int64{3}, []float32{0.5, -1, 10}))
	y := b.Add(b.MatMul(x, w), bias)
	b.OutputAs(y, "y", onnx.Float, onnx.S("batch"), onnx.N(3))
	g, err := b.Graph()
	if err != nil {
		t.Fatal(err)
	}
	return onnx.NewModel(g)
}

func TestLinearRunsInORT(t *testing.T) {
	needORT(t)
	data, err := onnxbuild.Marshal(linearModel(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		x    []float32
		dims []int64
		want []float32
	}{
		// Hand-computed: [1,0]@W = [1,2,3]; +b.
		{"unit", []float32{1, 0}, []int64{1, 2}, []float32{1.5, 1, 13}},
		// [1,1]@W = [5,7,9]; [2,-1]@W = [-2,-1,0].
		{"batch2", []float32{1, 1, 2, -1}, []int64{2, 2}, []float32{5.5, 6, 19, -1.5, -2, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runFloat(t, data, "", []string{"x"}, []*ort.Tensor[float32]{tensor(t, tc.dims, tc.x)}, []string{"y"})[0]
			if !near(got, tc.want, 1e-6) {
				t.Errorf("y = %v, want %v", got, tc.want)
			}
		})
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Name != "x" || !ins[0].Dimensions.Equals(ort.NewShape(-1, 2)) || ins[0].DataType != ort.TensorElementDataTypeFloat {
		t.Errorf("inputs = %v, want x float [-1 2]", ins)
	}
	if len(outs) != 1 || outs[0].Name != "y" || !outs[0].Dimensions.Equals(ort.NewShape(-1, 3)) {
		t.Errorf("outputs = %v, want y [-1 3]", outs)
	}
}

// TestAttributesAndTypes exercises every attribute kind and initializer
// type the writer supports, each through an op whose result is known.
func TestAttributesAndTypes(t *testing.T) {
	needORT(t)
	b := onnxbuild.New("attrs")
	x := b.Input("x", onnx.Float, onnx.N(2), onnx.N(3))
	var outs []string
	add := func(v string) { outs = append(outs, v) }
	// ints: Transpose perm → [3,2].
	add(b.Transpose(x, 1, 0))
	// float: LeakyRelu alpha.
	add(b.Op1("LeakyRelu", []string{x}, onnx.Flt("alpha", 0.5)))
	// floats: Constant value_floats.
	add(b.Op1("Constant", nil, onnx.Floats("value_floats", 7, 8, 9)))
	// tensor: Constant value.
	add(b.Op1("Constant", nil, onnx.TensorAttr("value", onnx.FloatTensor("", []int64{2}, []float32{-1, 1}))))
	// string: Pad with mode "edge", pads [0,1,0,0] → [2,4].
	add(b.Op1("Pad", []string{x, b.ConstInt64(0, 1, 0, 0)}, onnx.Str("mode", "edge")))
	// int: Concat axis 0 of float16/int32/uint8/bool/int64 initializers cast to float.
	f16 := b.Cast(b.Init(onnxbuild.Float16Tensor("h", []int64{3}, []float32{0.5, -2, 65504})), onnx.Float)
	i32 := b.Cast(b.Init(onnxbuild.Int32Tensor("i", []int64{3}, []int32{-7, 0, 1 << 20})), onnx.Float)
	u8 := b.Cast(b.Init(onnxbuild.Uint8Tensor("u", []int64{3}, []byte{0, 200, 255})), onnx.Float)
	bo := b.Cast(b.Init(onnxbuild.BoolTensor("bo", []int64{3}, []bool{true, false, true})), onnx.Float)
	i64 := b.Cast(b.ConstInt64(-3, 4, 5), onnx.Float)
	add(b.Concat(0, f16, i32, u8, bo, i64))
	names := make([]string, len(outs))
	for i, o := range outs {
		names[i] = "out" + string(rune('0'+i))
		b.OutputAs(o, names[i], onnx.Float)
	}
	data := marshal(t, b)
	got := runFloat(t, data, "", []string{"x"}, []*ort.Tensor[float32]{tensor(t, []int64{2, 3}, []float32{1, -2, 3, -4, 5, -6})}, names)
	want := [][]float32{
		{1, -4, -2, 5, 3, -6},
		{1, -1, 3, -2, 5, -3},
		{7, 8, 9},
		{-1, 1},
		{1, 1, -2, 3, -4, -4, 5, -6},
		{0.5, -2, 65504, -7, 0, 1 << 20, 0, 200, 255, 1, 0, 1, -3, 4, 5},
	}
	for i := range want {
		if !near(got[i], want[i], 0) {
			t.Errorf("%s = %v, want %v", names[i], got[i], want[i])
		}
	}
}

func TestExternalData(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	m := linearModel(t)
	// Make the weight lazy to exercise Fill as well.
	w := m.Graph.Initializers[0]
	raw := w.Raw
	w.Raw = nil
	w.Fill = func(dst []byte) { copy(dst, raw) }
	if err := onnxbuild.WriteFile(m, path, onnxbuild.WriteOptions{ExternalData: true, ExternalMinBytes: 1}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path + "_data")
	if err != nil {
		t.Fatalf("external data file: %v", err)
	}
	// W (24 bytes) at 0, b (12 bytes) at 4096.
	if st.Size() != 4096+12 {
		t.Errorf("data file size = %d, want %d", st.Size(), 4096+12)
	}
	got := runFloat(t, nil, path, []string{"x"}, []*ort.Tensor[float32]{tensor(t, []int64{1, 2}, []float32{0, 1})}, []string{"y"})[0]
	// [0,1]@W = [4,5,6]; + b.
	if want := []float32{4.5, 4, 16}; !near(got, want, 1e-6) {
		t.Errorf("y = %v, want %v", got, want)
	}
}

func TestStreamedInlineEqualsMarshal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	m := linearModel(t)
	if err := onnxbuild.WriteFile(m, path, onnxbuild.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := onnxbuild.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("WriteFile wrote %d bytes that differ from Marshal's %d", len(got), len(want))
	}
}

func TestBuilderErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *onnxbuild.Builder)
	}{
		{"duplicate input", func(b *onnxbuild.Builder) {
			b.Input("x", onnx.Float)
			b.Input("x", onnx.Float)
		}},
		{"unknown value", func(b *onnxbuild.Builder) {
			b.Add("nope", "nope")
		}},
		{"unknown output", func(b *onnxbuild.Builder) {
			b.Input("x", onnx.Float)
			b.Output("y", onnx.Float)
		}},
		{"no outputs", func(b *onnxbuild.Builder) {
			b.Input("x", onnx.Float)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := onnxbuild.New("g")
			tc.build(b)
			if _, err := b.Graph(); err == nil {
				t.Error("Graph() succeeded, want an error")
			}
		})
	}
	bad := &onnx.Model{IRVersion: 9, Graph: &onnx.Graph{Initializers: []*onnx.Tensor{{Name: "w", Type: onnx.Float, Dims: []int64{2}, Raw: []byte{1}}}}}
	if _, err := onnxbuild.Marshal(bad); err == nil {
		t.Error("Marshal of a tensor with short raw data succeeded, want an error")
	}
}
