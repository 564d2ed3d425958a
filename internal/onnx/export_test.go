package onnx

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// NodeAttrs lists, per node of the main graph, its op type and its integer
// attributes, decoded field by field from the serialized model.
func NodeAttrs(t *testing.T, model []byte) []map[string]int64 {
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
