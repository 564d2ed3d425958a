package onnx

import (
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// nodeAttrs lists, per node of the main graph, its op type and its integer
// attributes, decoded field by field from the serialized model.
func nodeAttrs(t *testing.T, model []byte) []map[string]int64 {
	t.Helper()
	graph, err := findField(model, modelGraph)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]int64
	eachRaw(graph, func(num protowire.Number, _ protowire.Type, _, node []byte) error {
		if num != graphNode {
			return nil
		}
		attrs := map[string]int64{}
		eachRaw(node, func(num protowire.Number, _ protowire.Type, _, v []byte) error {
			switch num {
			case nodeOpType:
				attrs["op:"+string(v)] = 1
			case nodeAttribute:
				name, _ := findField(v, attrName)
				eachRaw(v, func(num protowire.Number, typ protowire.Type, raw, _ []byte) error {
					if num == attrI {
						x, _ := protowire.ConsumeVarint(raw[1:])
						attrs[string(name)] = int64(x)
					}
					return nil
				})
			}
			return nil
		})
		nodes = append(nodes, attrs)
		return nil
	})
	return nodes
}

func TestSetNodeAttrInt(t *testing.T) {
	g := &Graph{
		Name: "g",
		Nodes: []Node{
			{OpType: "MatMulNBits", Domain: MicrosoftDomain, Inputs: []string{"a"}, Outputs: []string{"b"},
				Attrs: []Attr{Int("K", 32), Int("accuracy_level", 0), Int("N", 8)}},
			{OpType: "MatMulNBits", Domain: MicrosoftDomain, Inputs: []string{"b"}, Outputs: []string{"c"},
				Attrs: []Attr{Int("K", 8)}},
			{OpType: "Relu", Inputs: []string{"c"}, Outputs: []string{"d"}, Attrs: []Attr{Int("accuracy_level", 1)}},
			{OpType: "MatMulNBits", Domain: "other.domain", Inputs: []string{"d"}, Outputs: []string{"e"}},
		},
		Inputs:  []ValueInfo{{Name: "a", Type: Float, Shape: []Dim{N(1), N(32)}}},
		Outputs: []ValueInfo{{Name: "e", Type: Float, Shape: []Dim{N(1), N(8)}}},
	}
	data, err := NewModel(g).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := SetNodeAttrInt(data, MicrosoftDomain, "MatMulNBits", "accuracy_level", 4)
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
	got := nodeAttrs(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d nodes after rewrite, want %d", len(got), len(want))
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("node %d: %v, want %v", i, got[i], want[i])
		}
	}
	// Everything but the nodes is kept: the graph I/O reads back the same.
	in, outs, err := ReadGraphIO(out)
	if err != nil || len(in) != 1 || in[0].Name != "a" || len(outs) != 1 || outs[0].Name != "e" {
		t.Errorf("graph I/O after rewrite: %v %v %v", in, outs, err)
	}
	if _, _, err := SetNodeAttrInt([]byte{0xff, 0xff}, "", "X", "y", 1); err == nil {
		t.Error("garbage input was accepted")
	}
}

func TestUsesExternalData(t *testing.T) {
	w := &Tensor{Name: "w", Type: Float, Dims: []int64{256, 4}, Raw: make([]byte, 256*4*4)}
	g := &Graph{
		Name:         "g",
		Nodes:        []Node{{OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"y"}}},
		Initializers: []*Tensor{w},
		Inputs:       []ValueInfo{{Name: "x", Type: Float, Shape: []Dim{N(1), N(256)}}},
		Outputs:      []ValueInfo{{Name: "y", Type: Float, Shape: []Dim{N(1), N(4)}}},
	}
	dir := t.TempDir()
	for _, c := range []struct {
		external bool
	}{{false}, {true}} {
		path := filepath.Join(dir, fmt.Sprintf("m%v.onnx", c.external))
		if err := NewModel(g).WriteFile(path, WriteOptions{ExternalData: c.external, ExternalMinBytes: 16}); err != nil {
			t.Fatal(err)
		}
		data, unmap, err := MapFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UsesExternalData(data)
		unmap()
		if err != nil || got != c.external {
			t.Errorf("external=%v: UsesExternalData = %v, %v", c.external, got, err)
		}
	}
}
