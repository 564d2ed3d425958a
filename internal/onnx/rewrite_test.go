package onnx_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
)

func TestSetNodeAttrInt(t *testing.T) {
	g := &onnx.Graph{
		Name: "g",
		Nodes: []onnx.Node{
			{OpType: "MatMulNBits", Domain: onnx.MicrosoftDomain, Inputs: []string{"a"}, Outputs: []string{"b"},
				Attrs: []onnx.Attr{onnx.Int("K", 32), onnx.Int("accuracy_level", 0), onnx.Int("N", 8)}},
			{OpType: "MatMulNBits", Domain: onnx.MicrosoftDomain, Inputs: []string{"b"}, Outputs: []string{"c"},
				Attrs: []onnx.Attr{onnx.Int("K", 8)}},
			{OpType: "Relu", Inputs: []string{"c"}, Outputs: []string{"d"}, Attrs: []onnx.Attr{onnx.Int("accuracy_level", 1)}},
			{OpType: "MatMulNBits", Domain: "other.domain", Inputs: []string{"d"}, Outputs: []string{"e"}},
		},
		Inputs:  []onnx.ValueInfo{{Name: "a", Type: onnx.Float, Shape: []onnx.Dim{onnx.N(1), onnx.N(32)}}},
		Outputs: []onnx.ValueInfo{{Name: "e", Type: onnx.Float, Shape: []onnx.Dim{onnx.N(1), onnx.N(8)}}},
	}
	data, err := onnxbuild.Marshal(onnx.NewModel(g))
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := onnx.SetNodeAttrInt(data, onnx.MicrosoftDomain, "MatMulNBits", "accuracy_level", 4)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("changed %d nodes, want 2", n)
	}
	want := []map[string]int64{
		{"op:MatMulNBits": 1, "K": 32, "N": 8, "accuracy_level": 4},
		{"op:MatMulNBits": 1, "K": 8, "accuracy_level": 4},
		{"op:Relu": 1, "accuracy_level": 1},
		{"op:MatMulNBits": 1},
	}
	got := onnx.NodeAttrs(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d nodes after rewrite, want %d", len(got), len(want))
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("node %d: %v, want %v", i, got[i], want[i])
		}
	}
	// Everything but the nodes is kept: the graph I/O reads back the same.
	in, outs, err := onnx.ReadGraphIO(out)
	if err != nil || len(in) != 1 || in[0].Name != "a" || len(outs) != 1 || outs[0].Name != "e" {
		t.Errorf("graph I/O after rewrite: %v %v %v", in, outs, err)
	}
	if _, _, err := onnx.SetNodeAttrInt([]byte{0xff, 0xff}, "", "X", "y", 1); err == nil {
		t.Error("garbage input was accepted")
	}
}

func TestUsesExternalData(t *testing.T) {
	w := &onnx.Tensor{Name: "w", Type: onnx.Float, Dims: []int64{256, 4}, Raw: make([]byte, 256*4*4)}
	g := &onnx.Graph{
		Name:         "g",
		Nodes:        []onnx.Node{{OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"y"}}},
		Initializers: []*onnx.Tensor{w},
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Shape: []onnx.Dim{onnx.N(1), onnx.N(256)}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Shape: []onnx.Dim{onnx.N(1), onnx.N(4)}}},
	}
	dir := t.TempDir()
	for _, c := range []struct {
		external bool
	}{{false}, {true}} {
		path := filepath.Join(dir, fmt.Sprintf("m%v.onnx", c.external))
		if err := onnxbuild.WriteFile(onnx.NewModel(g), path, onnxbuild.WriteOptions{ExternalData: c.external, ExternalMinBytes: 16}); err != nil {
			t.Fatal(err)
		}
		data, unmap, err := onnx.MapFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := onnx.UsesExternalData(data)
		unmap()
		if err != nil || got != c.external {
			t.Errorf("external=%v: onnx.UsesExternalData = %v, %v", c.external, got, err)
		}
	}
}
