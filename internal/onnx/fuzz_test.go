package onnx_test

import (
	"reflect"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
)

// fuzzSeedModels are small serialized graphs: inputs with fixed and
// symbolic dims, initializers, MatMuls (which the int8 rewrite replaces)
// and a com.microsoft node (which SetNodeAttrInt edits).
func fuzzSeedModels(f *testing.F) [][]byte {
	var out [][]byte
	for k := range 2 {
		b := onnxbuild.New("seed")
		x := b.Input("x", onnx.Float, onnx.S("batch"), onnx.N(4))
		w := b.Init(onnx.FloatTensor("w", []int64{4, 3}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}))
		y := b.MatMul(x, w)
		if k == 1 {
			y = b.Op1("MatMulNBits", []string{y}, onnx.Int("accuracy_level", 0))
			b.OutputAs(b.Cast(b.ConstInt64(1, 2), onnx.Float), "c", onnx.Float, onnx.N(2))
		}
		b.OutputAs(y, "y", onnx.Float, onnx.S("batch"), onnx.N(3))
		g, err := b.Graph()
		if err != nil {
			f.Fatal(err)
		}
		if k == 1 {
			for _, n := range g.Nodes {
				if n.OpType == "MatMulNBits" {
					n.Domain = "com.microsoft"
				}
			}
		}
		data, err := onnxbuild.Marshal(onnx.NewModel(g))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// FuzzReadGraphIO reads arbitrary bytes as an ONNX model: the graph-I/O
// reader, the op census and the external-data check must refuse what is
// not a model without panicking. The two rewrites (int8 matmuls,
// accuracy_level) must keep the graph's inputs and outputs.
func FuzzReadGraphIO(f *testing.F) {
	for _, m := range fuzzSeedModels(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ins, outs, ioErr := onnx.ReadGraphIO(data)
		onnx.ReadOpTypes(data)
		onnx.UsesExternalData(data)
		check := func(what string, out []byte, err error) {
			if err != nil || ioErr != nil {
				return
			}
			ins2, outs2, err := onnx.ReadGraphIO(out)
			if err != nil {
				t.Fatalf("%s: rewritten model unreadable: %v", what, err)
			}
			if !reflect.DeepEqual(ins, ins2) || !reflect.DeepEqual(outs, outs2) {
				t.Fatalf("%s changed the graph I/O:\n%v %v\n%v %v", what, ins, outs, ins2, outs2)
			}
		}
		out, _, err := onnx.SetNodeAttrInt(data, "com.microsoft", "MatMulNBits", "accuracy_level", 4)
		check("SetNodeAttrInt", out, err)
		out, _, err = onnx.QuantizeMatMulsInt8(data)
		check("QuantizeMatMulsInt8", out, err)
	})
}
